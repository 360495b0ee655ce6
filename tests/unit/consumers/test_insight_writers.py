"""Who writes research insights, and what happens when an LLM fails or cites badly."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from studio_ai.adapters.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    TokenCallback,
)
from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.consumers.insights_worker.writers import choose_writer, write_insights
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.inference import EngineName, EngineTarget
from studio_ai.schemas.research import (
    InsightGenerator,
    InsightKind,
    InsightsRequested,
    ProviderName,
    ResearchSource,
)

SOURCES = [
    ResearchSource(
        source_id="fixture:a",
        provider=ProviderName.FIXTURE,
        external_id="a",
        title="Semaglutide and weight",
        authors=["Ada Lovelace"],
        year=2021,
        abstract="Semaglutide lowered body weight by 14.9 percent. Nausea was the most common "
        "adverse event in the trial.",
    ),
    ResearchSource(
        source_id="fixture:b",
        provider=ProviderName.FIXTURE,
        external_id="b",
        title="Tirzepatide and weight",
        authors=["Alan Turing"],
        year=2022,
        abstract="Tirzepatide lowered body weight by 20.9 percent at the highest dose. "
        "Gastrointestinal events were mild to moderate.",
    ),
]
SETTINGS = Settings(inference_attempts=2, inference_backoff_s=0)


class ScriptedEngine:
    def __init__(self, answer: str | None = None, error: EngineError | None = None) -> None:
        self.answer = answer
        self.error = error
        self.calls = 0

    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return GenerationResult(self.answer, 100, 20, "stop")


def request(
    *kinds: InsightKind, engine: EngineName = EngineName.EXTRACTIVE, remote: bool = True
) -> InsightsRequested:
    return InsightsRequested(
        job_id=uuid.uuid4(),
        session_id="rs_" + "0" * 32,
        kinds=list(kinds),
        sources=SOURCES,
        model_id="studio-ai/extractive" if engine is EngineName.EXTRACTIVE else "org/model",
        pool="builtin",
        target=EngineTarget(engine=engine, endpoint_url="http://127.0.0.1:1"),
        max_tokens=64,
        remote_llm=remote,
        queued_at=datetime.now(UTC),
    )


def write(req: InsightsRequested, engine: ScriptedEngine | None):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        writer, reason = await choose_writer(
            req, remote=engine, engines=EngineCache(SETTINGS), settings=SETTINGS
        )
        return await write_insights(req, writer, reason=reason, settings=SETTINGS)

    return asyncio.run(run())


def test_the_remote_llm_writes_when_configured_and_invented_citations_are_flagged() -> None:
    engine = ScriptedEngine(
        "- Semaglutide lowered weight [fixture:a]\n- Everyone was cured [crossref:10.1/fake]"
    )
    written = write(request(InsightKind.BULLETS, InsightKind.REFERENCES), engine)
    assert written.generator is InsightGenerator.REMOTE_LLM
    assert written.engine is EngineName.REMOTE_LLM
    bullets, references = written.insights
    assert bullets.kind is InsightKind.BULLETS and references.kind is InsightKind.REFERENCES
    assert bullets.generator is InsightGenerator.REMOTE_LLM
    assert [f.citation for f in bullets.flagged_citations] == ["crossref:10.1/fake"]
    assert bullets.citations == ["fixture:a"]
    assert written.usage.prompt_tokens == 100 and engine.calls == 1  # references: no call
    assert references.citations == ["fixture:a", "fixture:b"]


def test_an_answer_citing_nothing_attached_is_replaced_by_cited_sentences() -> None:
    answer = "Weight went down a lot [arxiv:2401.00001]. Everyone agreed."
    written = write(request(InsightKind.SUMMARY), ScriptedEngine(answer))
    (summary,) = written.insights
    assert summary.generator is InsightGenerator.EXTRACTIVE
    assert summary.note and "cited none of the attached sources" in summary.note
    assert summary.items
    assert all(set(i.citations) <= {"fixture:a", "fixture:b"} for i in summary.items)
    # The invented citation stays visible, and the job says who wrote what it kept.
    assert [f.citation for f in summary.flagged_citations] == ["arxiv:2401.00001"]
    assert written.generator is InsightGenerator.EXTRACTIVE
    assert written.model_id == "studio-ai/extractive"
    assert written.usage.completion_tokens == 20  # the tokens it spent still count


def test_an_llm_that_keeps_failing_falls_back_and_says_why() -> None:
    engine = ScriptedEngine(error=EngineError("server_error", "HTTP 503", retryable=True))
    written = write(request(InsightKind.SUMMARY, InsightKind.BULLETS), engine)
    assert engine.calls == 4  # two kinds, two attempts each
    assert all(i.generator is InsightGenerator.EXTRACTIVE and i.items for i in written.insights)
    assert written.fallback_reason and "server_error" in written.fallback_reason
    assert "HTTP 503" not in written.fallback_reason  # a server's answer is not shown to users
    assert written.generator is InsightGenerator.EXTRACTIVE


class BrokenEngine(ScriptedEngine):
    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        raise AttributeError("'list' object has no attribute 'get'")


def test_an_unreadable_answer_falls_back_instead_of_failing_the_job() -> None:
    written = write(request(InsightKind.SUMMARY), BrokenEngine())
    (summary,) = written.insights
    assert summary.generator is InsightGenerator.EXTRACTIVE and summary.items
    assert written.fallback_reason and "bad_answer" in written.fallback_reason


def test_the_remote_llm_is_used_only_when_the_gateway_chose_it() -> None:
    engine = ScriptedEngine("- Semaglutide lowered weight [fixture:a]")
    written = write(request(InsightKind.BULLETS, remote=False), engine)
    assert engine.calls == 0 and written.generator is InsightGenerator.EXTRACTIVE
    missing = write(request(InsightKind.BULLETS, remote=True), None)
    assert missing.fallback_reason and "not configured" in missing.fallback_reason


def test_without_llm_or_installed_model_the_extractive_engine_writes() -> None:
    req = request(InsightKind.SUMMARY, InsightKind.OUTLINE, remote=False)
    written = write(req, None)
    assert written.generator is InsightGenerator.EXTRACTIVE
    assert written.fallback_reason and "no remote LLM" in written.fallback_reason
    assert [i.kind for i in written.insights] == [InsightKind.SUMMARY, InsightKind.OUTLINE]
    for insight in written.insights:
        assert insight.items and all(item.citations for item in insight.items)


def test_a_model_whose_engine_cannot_be_made_falls_back_to_extractive() -> None:
    req = request(InsightKind.SUMMARY, engine=EngineName.TRANSFORMERS, remote=False)
    written = write(req, None)
    assert written.generator is InsightGenerator.EXTRACTIVE
    assert written.fallback_reason and "org/model" in written.fallback_reason
