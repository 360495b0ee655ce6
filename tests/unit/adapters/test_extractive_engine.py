"""The extractive engine as a worker sees it: cited answers, word budgets and streamed words."""

from __future__ import annotations

import threading

import pytest

from studio_ai.adapters.engines import extractive as extractive_engine
from studio_ai.adapters.engines.base import EngineError, GenerationRequest, GenerationResult
from studio_ai.adapters.engines.extractive import ExtractiveEngine
from studio_ai.domain.extractive import Source
from studio_ai.schemas.inference import TextTask

REF = "crossref:10.1056/NEJMoa2032183"
ABSTRACT = Source(
    REF,
    "We conducted a randomized, double-blind, placebo-controlled trial of once-weekly "
    "semaglutide in adults with obesity. A total of 1961 adults with a body-mass index of 30 or "
    "greater were randomly assigned to semaglutide or placebo. Participants received "
    "subcutaneous semaglutide at a dose of 2.4 mg once weekly for 68 weeks. The mean change in "
    "body weight from baseline to week 68 was -14.9% in the semaglutide group as compared with "
    "-2.4% in the placebo group. Gastrointestinal adverse events, mostly mild nausea and "
    "diarrhea, were more frequent with semaglutide than with placebo.",
)
NOTES = Source(
    "job:notes-1",
    "Semaglutide is a glucagon-like peptide-1 receptor agonist used for weight loss. "
    "Weight regain after stopping semaglutide was reported in an extension study.",
)
RESULT = "-14.9% in the semaglutide group"
DOSE = "at a dose of 2.4 mg once weekly"


def request(
    task: TextTask,
    prompt: str,
    sources: tuple[Source, ...] = (ABSTRACT, NOTES),
    *,
    max_tokens: int = 512,
) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        task=task,
        prompt=prompt,
        sources=sources,
    )


async def generate(req: GenerationRequest) -> GenerationResult:
    return await ExtractiveEngine().generate(req)


async def test_summary_is_a_cited_paragraph_of_the_sources_sentences() -> None:
    prompt = "Summarize this trial for a slide."
    result = await generate(request(TextTask.SUMMARY, prompt))

    assert RESULT in result.text
    assert "\n" not in result.text
    # Every sentence is followed by the ref of the document it was taken from.
    cited = result.text.count(f"[{REF}]") + result.text.count("[job:notes-1]")
    assert cited == result.text.count(". [")
    assert 2 <= cited <= 5
    assert result.finish_reason == "stop"
    assert result.completion_tokens == len(result.text.split())
    assert result.prompt_tokens == len(prompt.split()) + sum(
        len(s.text.split()) for s in (ABSTRACT, NOTES)
    )


async def test_summary_of_the_prompt_alone_has_no_citations() -> None:
    prompt = "Summarize: " + ABSTRACT.text
    result = await generate(request(TextTask.SUMMARY, prompt, sources=()))

    assert RESULT in result.text
    assert "[" not in result.text


async def test_bullets_are_one_cited_line_each_without_trailing_periods() -> None:
    result = await generate(request(TextTask.BULLETS, "Give the key points as bullets:"))

    lines = result.text.split("\n")
    assert 2 <= len(lines) <= 5
    for line in lines:
        assert line.startswith("- ")
        assert line.endswith((f" [{REF}]", " [job:notes-1]"))
        assert not line.rsplit(" [", 1)[0].endswith(".")
    assert any(RESULT in line for line in lines)


async def test_qa_answers_with_the_sentence_that_holds_the_dose() -> None:
    result = await generate(request(TextTask.QA, "What dose of semaglutide was used?"))

    first = result.text.split(f"[{REF}]")[0]
    assert DOSE in first
    assert result.text.startswith("Participants received")
    assert f"[{REF}]" in result.text
    assert result.finish_reason == "stop"


async def test_qa_the_material_does_not_answer_fails_without_retry() -> None:
    with pytest.raises(EngineError) as caught:
        await generate(request(TextTask.QA, "Which insulin pump firmware was recalled?"))

    assert caught.value.code == "no_answer"
    assert caught.value.retryable is False
    assert "context_refs" in caught.value.message


async def test_free_prompt_gets_a_cited_summary_of_the_material() -> None:
    result = await generate(request(TextTask.FREE, "Write a tweet about this trial."))

    assert RESULT in result.text
    assert f"[{REF}]" in result.text
    assert "tweet" not in result.text


async def test_free_prompt_with_nothing_to_quote_says_what_to_give() -> None:
    with pytest.raises(EngineError) as caught:
        await generate(request(TextTask.FREE, "Write a haiku.", sources=()))

    assert caught.value.code == "nothing_to_extract"
    assert caught.value.retryable is False
    assert "context_refs" in caught.value.message


@pytest.mark.parametrize("task", [TextTask.SUMMARY, TextTask.BULLETS])
async def test_max_tokens_drops_whole_sentences_from_the_end(task: TextTask) -> None:
    full = await generate(request(task, "Summarize this trial for a slide."))
    budget = full.completion_tokens - 1

    cut = await generate(request(task, "Summarize this trial for a slide.", max_tokens=budget))

    assert cut.finish_reason == "length"
    assert cut.completion_tokens <= budget
    assert cut.completion_tokens == len(cut.text.split())
    # What is left is the full answer's first sentences, whole and still cited.
    assert full.text.startswith(cut.text)
    assert full.text[len(cut.text)] in " \n"
    assert cut.text.endswith("]")
    assert cut.text.count("[") == full.text.count("[") - 1


async def test_a_budget_smaller_than_one_sentence_cuts_it_and_keeps_the_citation() -> None:
    result = await generate(
        request(TextTask.QA, "What dose of semaglutide was used?", max_tokens=5)
    )

    assert result.text == f"Participants received subcutaneous semaglutide\u2026 [{REF}]"
    assert result.completion_tokens == 5
    assert result.finish_reason == "length"


async def test_on_token_streams_the_same_text_word_by_word() -> None:
    received: list[str] = []

    async def on_token(token: str) -> None:
        received.append(token)

    result = await ExtractiveEngine().generate(
        request(TextTask.BULLETS, "Give the key points as bullets:"), on_token=on_token
    )

    assert "".join(received) == result.text
    assert len(received) == result.completion_tokens
    assert all(len(token.split()) == 1 for token in received)
    assert all(token[-1].isspace() for token in received[:-1])
    assert result.first_token_s is not None
    assert 0 <= result.first_token_s <= result.total_s


@pytest.mark.parametrize(
    ("req", "says"),
    [
        (request(TextTask.SUMMARY, "   ", sources=(ABSTRACT,)), "prompt is empty"),
        (request(TextTask.QA, ""), "prompt is empty"),
        (request(TextTask.SUMMARY, "Summarize this.", max_tokens=0), "max_tokens"),
    ],
)
async def test_invalid_input_is_not_retryable(req: GenerationRequest, says: str) -> None:
    with pytest.raises(EngineError) as caught:
        await generate(req)

    assert caught.value.code == "invalid_input"
    assert caught.value.retryable is False
    assert says in caught.value.message


async def test_large_inputs_are_ranked_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    extract = extractive_engine._extract

    def recording_extract(*args: object, **kwargs: object) -> object:
        threads.append(threading.get_ident())
        return extract(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(extractive_engine, "_extract", recording_extract)
    loop_thread = threading.get_ident()
    long_source = Source("job:long", " ".join([ABSTRACT.text] * 40))
    assert len(long_source.text) > extractive_engine.THREAD_THRESHOLD_CHARS

    small = await generate(request(TextTask.SUMMARY, "Summarize this.", sources=(ABSTRACT,)))
    large = await generate(request(TextTask.SUMMARY, "Summarize this.", sources=(long_source,)))

    assert threads[0] == loop_thread
    assert threads[1] != loop_thread
    assert RESULT in small.text
    assert RESULT in large.text
    assert "[job:long]" in large.text
