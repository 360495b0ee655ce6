"""The text tasks' prompts, in one place: chat messages that engines render with the model's
own chat template (summary, bullets, Q&A, or the caller's prompt as it is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.inference import TextTask

__all__ = ["TextTask", "build_messages"]


SYSTEM = (
    "You help biomedical educators build presentation decks. Be accurate and concise, use "
    "only the material given, and say so when it does not contain the answer."
)

INSTRUCTIONS = {
    TextTask.SUMMARY: "Summarise the material below in one short paragraph for a slide.",
    TextTask.BULLETS: (
        "Turn the material below into at most five slide bullets: one line each, no trailing "
        "periods, most important first."
    ),
    TextTask.QA: "Answer the question using only the material below.",
}


def build_messages(
    task: TextTask, prompt: str, context: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Chat messages for `task`; for `qa`, `prompt` is the question."""
    if not prompt.strip():
        raise InvalidInput(
            "the prompt is empty: give the text to work on or the question to answer"
        )
    if task is TextTask.FREE:
        material = "\n\n".join(c for c in context if c.strip())
        content = f"{prompt}\n\n{material}" if material else prompt
        return [{"role": "user", "content": content}]
    documents = [c for c in context if c.strip()]
    material = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(documents, start=1))
    if task is TextTask.QA:
        if not documents:
            raise InvalidInput("a Q&A job needs context: attach context_refs with the material")
        body = f"{INSTRUCTIONS[task]}\n\nQuestion: {prompt}\n\nMaterial:\n{material}"
    else:
        body = f"{INSTRUCTIONS[task]}\n\nMaterial:\n{prompt}" + (
            f"\n\n{material}" if material else ""
        )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]
