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
    return OpenAICompatibleEngine(
        settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.inference_timeout_s,
    )


async def choose_writer(
    request: InsightsRequested, *, remote: Engine | None, engines: EngineCache, settings: Settings
) -> tuple[Writer, str | None]:
    """The writer for the job, and why a more capable one was not used (if one was not)."""
    if remote is not None:
        return Writer(
            InsightGenerator.REMOTE_LLM, EngineName.REMOTE_LLM, settings.llm_model, remote
        ), None
    if request.target.engine is not EngineName.EXTRACTIVE:
        try:
            engine = await engines.get(request.target, request.model_id)
        except EngineError as exc:
            return _extractive(), f"model {request.model_id!r} is not usable here: {exc.message}"
        return Writer(
            InsightGenerator.POOL, request.target.engine, request.model_id, engine
        ), request.fallback_reason
    reason = request.fallback_reason or "no remote LLM is configured and no text model is installed"
    return _extractive(), reason


def _extractive() -> Writer:
    return Writer(InsightGenerator.EXTRACTIVE, EngineName.EXTRACTIVE, "studio-ai/extractive")


async def write_insights(
    request: InsightsRequested, writer: Writer, *, reason: str | None, settings: Settings
) -> Written:
    """The insights of every kind asked for, in that order. An LLM is asked for all kinds at
    once (its server batches them)."""
    sources, question = request.sources, request.question
    written = Written(
        insights=[],
        generator=writer.generator,
        engine=writer.engine_name,
        model_id=writer.model_id,
        fallback_reason=reason,
    )
    asked = [k for k in request.kinds if k is not InsightKind.REFERENCES]
    answers: dict[InsightKind, Insight | BaseException | None] = {}
    if writer.engine is not None and asked:
        began = time.monotonic()
        results = await asyncio.gather(
            *(_ask(writer.engine, request, kind, written, settings) for kind in asked),
            return_exceptions=True,
        )
        # The calls overlap: the job held the engine for the wall time, not the sum.
        written.llm_seconds = time.monotonic() - began
        answers = dict(zip(asked, results, strict=True))
    failed = next((a for a in answers.values() if isinstance(a, EngineError)), None)
    for kind in request.kinds:
        if kind is InsightKind.REFERENCES:
            written.insights.append(references_insight(sources))
            continue
        answer = answers.get(kind)
        if isinstance(answer, BaseException) and not isinstance(answer, EngineError):
            raise answer
        if isinstance(answer, Insight):
            written.insights.append(answer)
            continue
        insight = extractive_insight(kind, sources, question)
        if writer.engine is not None:
            why = answer if isinstance(answer, EngineError) else None
            insight = insight.model_copy(
                update={
                    "generator": InsightGenerator.EXTRACTIVE,
                    "note": _joined(insight.note, _why_extractive(why)),
                }
            )
        written.insights.append(insight)
    if failed is not None:
        log.warning(
            "the LLM could not write some insights; sentences were chosen instead",
            extra={"job_id": str(request.job_id), "code": failed.code},
        )
        written.fallback_reason = _joined(
            written.fallback_reason,
            f"{writer.generator.value} failed ({failed.code}: {failed.message}); those insights "
            "were chosen from the sources instead",
        )
    return written


async def _ask(
    engine: Engine,
    request: InsightsRequested,
    kind: InsightKind,
    written: Written,
    settings: Settings,
) -> Insight | None:
    """The LLM's insight of `kind`, or None when its answer cites no attached source."""
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
        return None
    return insight.model_copy(update={"generator": written.generator})


def _why_extractive(failed: EngineError | None) -> str:
    if failed is not None:
        return f"the model could not be used ({failed.code}); sentences chosen from the sources"
    return f"{UNCITED}; sentences chosen from the sources instead"


def _joined(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second
