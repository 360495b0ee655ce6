"""Task prompts carry the instruction, the material and the question, and refuse empty input."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.task_prompts import TextTask, build_messages


def test_summary_and_bullets_carry_the_material_after_a_system_message() -> None:
    for task in (TextTask.SUMMARY, TextTask.BULLETS):
        messages = build_messages(task, "The trial met its endpoint.", ["Context doc."])
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "The trial met its endpoint." in messages[1]["content"]
        assert "[1] Context doc." in messages[1]["content"]


def test_qa_puts_the_question_before_the_numbered_material() -> None:
    content = build_messages(TextTask.QA, "What dose?", ["2.4 mg weekly.", "Placebo."])[1][
        "content"
    ]
    assert content.index("Question: What dose?") < content.index("[1] 2.4 mg weekly.")
    assert "[2] Placebo." in content


def test_free_prompts_pass_through_and_empty_input_is_refused() -> None:
    assert build_messages(TextTask.FREE, "Write a title.") == [
        {"role": "user", "content": "Write a title."}
    ]
    with pytest.raises(InvalidInput, match="empty"):
        build_messages(TextTask.SUMMARY, "  ")
    with pytest.raises(InvalidInput, match="context_refs"):
        build_messages(TextTask.QA, "What dose?")
