"""The extractive engine: summary, bullets and Q&A made of the inputs' own sentences.

It needs no weights and no GPU, so it answers offline and is the last-resort fallback for
text tasks. It works on the job as asked (`request.task`, `request.prompt`,
`request.sources`), not on the rendered chat messages, and cites each sentence's source as
`[ref]` when the job has sources. A token is a whitespace-separated word: `max_tokens` caps
the answer's words (cut at a sentence or bullet boundary where possible), the usage counts
words, and `on_token` receives the answer word by word so progress reporting works as it does
for a model.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Literal

from studio_ai.adapters.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    TokenCallback,
)
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.extractive import (
    Sentence,
    Source,
    answer,
    bullets,
    render,
    split_sentences,
    summarize,
)
from studio_ai.schemas.inference import TextTask

Style = Literal["paragraph", "bullets"]

# Above this many characters of input the ranking runs in a worker thread (a few ms per 10k
# characters), so a long document does not stall the event loop that streams other jobs.
THREAD_THRESHOLD_CHARS = 20_000
ELLIPSIS = "\u2026"
_WORD = re.compile(r"\S+\s*")


class ExtractiveEngine:
    """An `Engine` that never invents text: every sentence it returns is one of the inputs'."""

    def __init__(self, *, thread_threshold_chars: int = THREAD_THRESHOLD_CHARS) -> None:
        self._thread_threshold_chars = thread_threshold_chars

    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        started = time.monotonic()
        if request.max_tokens < 1:
            raise EngineError(
                "invalid_input",
                f"max_tokens must be at least 1, got {request.max_tokens}",
                retryable=False,
            )
        sources = tuple(request.sources)
        size = len(request.prompt) + sum(len(source.text) for source in sources)
        try:
            if size > self._thread_threshold_chars:
                sentences = await asyncio.to_thread(_extract, request.task, request.prompt, sources)
            else:
                sentences = _extract(request.task, request.prompt, sources)
        except InvalidInput as exc:
            raise EngineError("invalid_input", exc.message, retryable=False) from exc

        style: Style = "bullets" if request.task is TextTask.BULLETS else "paragraph"
        text, truncated = _fit(sentences, style=style, cite=bool(sources), limit=request.max_tokens)
        tokens = _WORD.findall(text)
        first_token_s: float | None = None
        if on_token is not None:
            for token in tokens:
                if first_token_s is None:
                    first_token_s = time.monotonic() - started
                await on_token(token)
        elif tokens:
            first_token_s = time.monotonic() - started
        return GenerationResult(
            text=text,
            prompt_tokens=len(request.prompt.split())
            + sum(len(source.text.split()) for source in sources),
            completion_tokens=len(tokens),
            finish_reason="length" if truncated else "stop",
            first_token_s=first_token_s,
            total_s=time.monotonic() - started,
        )


def _extract(task: TextTask, prompt: str, sources: Sequence[Source]) -> list[Sentence]:
    """The sentences that answer `task`; raises InvalidInput or EngineError when none can."""
    if not prompt.strip():
        raise InvalidInput(
            "the prompt is empty: give the text to work on or the question to answer"
        )
    if task is TextTask.QA:
        found = answer(prompt, sources)
    elif task is TextTask.BULLETS:
        found = bullets(prompt, sources)
    else:  # summary, and free: the extractive engine can only summarise what it was given
        found = summarize(prompt, sources)
    if found:
        return found
    if task is TextTask.QA and _has_sentences(prompt, sources):
        raise EngineError(
            "no_answer",
            "no sentence of the material answers the question: ask it with words the "
            "material uses, or attach context_refs that cover it",
            retryable=False,
        )
    raise EngineError(
        "nothing_to_extract",
        "there is no sentence of 3 or more words to take an answer from (the extractive "
        "engine only quotes its inputs): give a longer prompt or attach context_refs",
        retryable=False,
    )


def _has_sentences(question: str, sources: Sequence[Source]) -> bool:
    statements = [s for s in split_sentences(question) if not s.endswith("?")]
    return bool(statements) or any(split_sentences(source.text) for source in sources)


def _fit(
    sentences: Sequence[Sentence], *, style: Style, cite: bool, limit: int
) -> tuple[str, bool]:
    """The rendered answer within `limit` words, and whether anything was left out.

    Whole sentences (bullets) are kept while they fit. If not even the first one fits, it is
    cut to the limit and ends with an ellipsis, keeping its citation when there is room.
    """
    units = [render([sentence], style=style, cite=cite) for sentence in sentences]
    separator = "\n" if style == "bullets" else " "
    kept: list[str] = []
    used = 0
    for unit in units:
        words = len(unit.split())
        if used + words > limit:
            break
        kept.append(unit)
        used += words
    if len(kept) == len(units):
        return separator.join(kept), False
    if not kept:
        kept.append(_cut(sentences[0], style=style, cite=cite, limit=limit))
    return separator.join(kept), True


def _cut(sentence: Sentence, *, style: Style, cite: bool, limit: int) -> str:
    prefix = "- " if style == "bullets" else ""
    citation = f" [{sentence.ref}]" if cite and sentence.ref is not None else ""
    room = limit - len(prefix.split()) - len(citation.split())
    if room < 1:  # too small for the decorations: the first words of the sentence alone
        prefix, citation, room = "", "", limit
    words = sentence.text.split()[:room]
    return f"{prefix}{' '.join(words).rstrip(',;:')}{ELLIPSIS}{citation}"
