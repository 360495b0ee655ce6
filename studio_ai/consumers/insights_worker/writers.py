"""Who writes a job's insights: the operator's remote LLM (LLM_BASE_URL + LLM_API_KEY), else
the workspace's installed text model through its engine, else the extractive engine.

An LLM's answer keeps only citations of attached sources (others are removed and flagged).
A kind the LLM cannot write (the call fails after its retries, or the answer cites no
attached source at all) is chosen from the sources instead, and says so: every insight
carries citations of attached sources. `references` is always formatted from the sources.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from studio_ai.adapters.engines.base import (
    Engine,
    EngineError,
    GenerationRequest,
    generate_with_retries,
)
from studio_ai.adapters.engines.openai_compatible import OpenAICompatibleEngine
from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.domain.fallback import EXTRACTIVE_MODEL_ID
from studio_ai.domain.insight_prompts import insight_messages, parse_insight
from studio_ai.domain.research_extractive import extractive_insight, references_insight
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.inference import EngineName, Usage
from studio_ai.schemas.research import (
    Insight,
    InsightGenerator,
    InsightKind,
    InsightsRequested,
)

log = logging.getLogger(__name__)

UNCITED = "the model's answer cited none of the attached sources"


@dataclass
class Writer:
    generator: InsightGenerator
    engine_name: EngineName
    model_id: str
    engine: Engine | None = None


@dataclass
class Written:
    insights: list[Insight]
    generator: InsightGenerator
    engine: EngineName
    model_id: str
    fallback_reason: str | None
    usage: Usage = field(default_factory=Usage)
    llm_seconds: float = 0.0


def remote_engine(settings: Settings) -> OpenAICompatibleEngine | None:
    if not (settings.llm_base_url and settings.llm_api_key):
        return None
    base_url = settings.llm_base_url.rstrip("/")
    # The engine adds /v1/chat/completions; servers are often given as https://host/v1.
    base_url = base_url.removesuffix("/v1")
    return OpenAICompatibleEngine(
        base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.inference_timeout_s,
    )


async def choose_writer(
    request: InsightsRequested, *, remote: Engine | None, engines: EngineCache, settings: Settings
) -> tuple[Writer, str | None]:
    """The writer for the job, and why a more capable one was not used (if one was not).

    Reasons name what was not used and an error code, never a server's answer or address:
    they are shown to the workspace's users."""
    missing: str | None = None
    if request.remote_llm:
        if remote is not None:
            return Writer(
                InsightGenerator.REMOTE_LLM, EngineName.REMOTE_LLM, settings.llm_model, remote
            ), None
        missing = "the remote LLM is not configured on the insights worker"
        log.warning("a job asked for the remote LLM; LLM_BASE_URL/LLM_API_KEY are not set here")
    if request.target.engine is not EngineName.EXTRACTIVE:
        try:
            engine = await engines.get(request.target, request.model_id)
        except EngineError as exc:
            log.warning(
                "the insights worker cannot use the model",
                extra={"model_id": request.model_id, "code": exc.code, "error": exc.message},
            )
            return _extractive(), _joined(
                missing, f"model {request.model_id!r} is not usable here ({exc.code})"
            )
        return Writer(
            InsightGenerator.POOL, request.target.engine, request.model_id, engine
        ), _joined(missing, request.fallback_reason)
    reason = request.fallback_reason
    if reason is None and request.requested_model_id != EXTRACTIVE_MODEL_ID:
        reason = "no remote LLM is configured and no text model is installed"
    return _extractive(), _joined(missing, reason)


def _extractive() -> Writer:
    return Writer(InsightGenerator.EXTRACTIVE, EngineName.EXTRACTIVE, EXTRACTIVE_MODEL_ID)


async def write_insights(
    request: InsightsRequested, writer: Writer, *, reason: str | None, settings: Settings
) -> Written:
    """The insights of every kind asked for, in that order. An LLM is asked for all kinds at
    once (its server batches them), within STUDIO_RESEARCH_LLM_DEADLINE_S."""
    sources, question = request.sources, request.question
    written = Written(
        insights=[],
        generator=writer.generator,
        engine=writer.engine_name,
        model_id=writer.model_id,
        fallback_reason=reason,
    )
    asked: list[InsightKind] = [k for k in request.kinds if k is not InsightKind.REFERENCES]
    answers: dict[InsightKind, Insight | EngineError] = {}
    if writer.engine is not None and asked:
        answers = await _ask_all(writer.engine, request, asked, written, settings)
    failed = next((a for a in answers.values() if isinstance(a, EngineError)), None)
    for kind in request.kinds:
        if kind is InsightKind.REFERENCES:
            written.insights.append(references_insight(sources))
            continue
        answer = answers.get(kind)
        if isinstance(answer, Insight) and answer.citations:
            written.insights.append(answer.model_copy(update={"generator": writer.generator}))
            continue
        insight = extractive_insight(kind, sources, question)
        if writer.engine is not None:
            why = (
                f"the model could not be used ({answer.code})"
                if isinstance(answer, EngineError)
                else UNCITED
            )
            insight = insight.model_copy(
                update={
                    "generator": InsightGenerator.EXTRACTIVE,
                    "note": _joined(insight.note, f"{why}; sentences chosen from the sources"),
                    # What the model cited wrongly stays visible.
                    "flagged_citations": answer.flagged_citations
                    if isinstance(answer, Insight)
                    else [],
                }
            )
        written.insights.append(insight)
    if writer.engine is not None and not any(
        i.generator is writer.generator for i in written.insights
    ):
        # Nothing the LLM wrote was kept: the job was written by the extractive engine (the
        # tokens it spent still count).
        if failed is None:
            written.fallback_reason = _joined(
                written.fallback_reason,
                f"{writer.generator.value} {writer.model_id!r} was asked, but none of its "
                "answers cited an attached source",
            )
        written.generator = InsightGenerator.EXTRACTIVE
        written.engine = EngineName.EXTRACTIVE
        written.model_id = EXTRACTIVE_MODEL_ID
    if failed is not None:
        written.fallback_reason = _joined(
            written.fallback_reason,
            f"{writer.generator.value} failed ({failed.code}); those insights were chosen from "
            "the sources instead",
        )
    return written


async def _ask_all(
    engine: Engine,
    request: InsightsRequested,
    kinds: list[InsightKind],
    written: Written,
    settings: Settings,
) -> dict[InsightKind, Insight | EngineError]:
    began = time.monotonic()
    calls = [asyncio.ensure_future(_ask(engine, request, k, written, settings)) for k in kinds]
    try:
        done, pending = await asyncio.wait(calls, timeout=settings.research_llm_deadline_s)
    except asyncio.CancelledError:
        # The job was cancelled: its calls go too (asyncio.wait leaves them running).
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        raise
    for call in pending:
        call.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    # The calls overlap: the job held the engine for the wall time, not their sum.
    written.llm_seconds = time.monotonic() - began
    answers: dict[InsightKind, Insight | EngineError] = {}
    for kind, call in zip(kinds, calls, strict=True):
        if call not in done:
            answers[kind] = EngineError(
                "deadline",
                f"no answer within {settings.research_llm_deadline_s:.0f} s",
                retryable=True,
            )
        elif (exc := call.exception()) is not None:
            if not isinstance(exc, Exception):
                raise exc
            if not isinstance(exc, EngineError):
                # A malformed answer the engine did not classify: fall back, and log it.
                log.warning(
                    "the LLM's answer could not be read",
                    exc_info=exc,
                    extra={"job_id": str(request.job_id)},
                )
                exc = EngineError("bad_answer", type(exc).__name__, retryable=True)
            log.warning(
                "the LLM could not write an insight; choosing sentences instead",
                extra={"job_id": str(request.job_id), "kind": kind.value, "code": exc.code},
            )
            answers[kind] = exc
        else:
            answers[kind] = call.result()
    return answers


async def _ask(
    engine: Engine,
    request: InsightsRequested,
    kind: InsightKind,
    written: Written,
    settings: Settings,
) -> Insight:
    """The LLM's insight of `kind`, its citations checked against the attached sources."""
    result = await generate_with_retries(
        engine,
        GenerationRequest(
            messages=insight_messages(kind, request.sources, request.question),
            max_tokens=request.max_tokens,
            temperature=0.2,
        ),
        attempts=settings.inference_attempts,
        backoff_s=settings.inference_backoff_s,
    )
    written.usage = Usage(
        prompt_tokens=written.usage.prompt_tokens + result.prompt_tokens,
        completion_tokens=written.usage.completion_tokens + result.completion_tokens,
    )
    insight = parse_insight(kind, result.text, request.sources, request.question)
    if not insight.citations:
        log.info(
            "the LLM's answer cited no attached source; choosing sentences instead",
            extra={"job_id": str(request.job_id), "kind": kind.value},
        )
    return insight


def _joined(first: str | None, second: str | None) -> str | None:
    if first and second:
        return f"{first}; {second}"
    return first or second
