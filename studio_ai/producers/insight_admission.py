"""POST /research/sessions/{id}/generate-insights: admits an insights job like any inference
job (plan, quota reservation, audit, a `queued` job readable at /ai/jobs/{id}) and publishes
research.insights-requested.v1 with a snapshot of the session's sources.

The gateway resolves the workspace's text model (with the same fallback as any text job);
the insights worker then writes with the remote LLM if the operator configured one, else with
that model, else with the extractive engine, and records which it used.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import UTC, datetime

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.fallback import EXTRACTIVE_MODEL_ID, resolve_model
from studio_ai.domain.identity import Caller
from studio_ai.domain.inference_job import InferenceJob, JobProgress
from studio_ai.domain.insight_prompts import DEFAULT_MAX_CHARS_PER_SOURCE
from studio_ai.domain.plans import check_features, model_allowed
from studio_ai.domain.quotas import Metering, Outcome, token_estimate
from studio_ai.producers.gateway.context import GatewayState
from studio_ai.producers.governance import release, reserve, workspace_plan
from studio_ai.producers.job_admission import (
    audited_denial,
    catalog_for,
    check_known,
    default_model,
    engine_target,
    live_pools,
    metering_for,
    queue_admitted,
)
from studio_ai.producers.research_sessions import session_doc
from studio_ai.schemas.audit import AuditAction, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import JobTimings, TextTask
from studio_ai.schemas.models import Modality, ModelTask
from studio_ai.schemas.research import InsightKind, InsightsRequested, ResearchSource
from studio_ai.schemas.research_api import GenerateInsightsRequest, InsightLinks, InsightsAccepted
from studio_ai.schemas.topics import RESEARCH_INSIGHTS_REQUESTED

REMOTE_LLM_PREFIX = "remote-llm/"

# The request carries the sources; Kafka refuses messages over 1 MB by default.
MAX_SNAPSHOT_BYTES = 800_000

# The text task each kind is, for the plan's feature check (references need no model).
_TASK_OF = {
    InsightKind.SUMMARY: TextTask.SUMMARY,
    InsightKind.BULLETS: TextTask.BULLETS,
    InsightKind.OUTLINE: TextTask.BULLETS,
    InsightKind.QA: TextTask.QA,
}


def remote_llm_id(state: GatewayState) -> str | None:
    """The remote LLM as plans name it (`remote-llm/<LLM_MODEL>`), when one is configured."""
    settings = state.settings
    return f"{REMOTE_LLM_PREFIX}{settings.llm_model}" if settings.llm_base_url else None


async def submit_insights(
    state: GatewayState,
    caller: Caller,
    session_id: str,
    body: GenerateInsightsRequest,
    correlation_id: str,
) -> InsightsAccepted:
    await session_doc(state, caller.workspace_id, session_id)
    sources = [
        ResearchSource.model_validate(d["source"])
        for d in await state.store.research.sources(caller.workspace_id, session_id)
    ]
    if not sources:
        raise Conflict(
            f"session {session_id} has no sources yet: attach some with POST "
            f"/research/sessions/{session_id}/attach, then generate"
        )
    snapshot_bytes = sum(len(s.model_dump_json()) for s in sources)
    if snapshot_bytes > MAX_SNAPSHOT_BYTES:
        raise InvalidInput(
            f"the session's sources hold {snapshot_bytes // 1000} kB of text, more than one "
            f"request carries ({MAX_SNAPSHOT_BYTES // 1000} kB): detach some sources, or "
            "generate in a session with fewer"
        )
    catalog = await catalog_for(state, caller)
    if body.model_id is not None:
        check_known(body.model_id, ModelTask.FAST_TEXT, catalog)
    plan = await workspace_plan(state, caller.workspace_id)
    job_id = uuid.uuid4()
    inputs = _inputs(session_id, body.question, sources)
    written_kinds = [k for k in body.kinds if k in _TASK_OF]
    requested = body.model_id or (
        await default_model(state, caller, ModelTask.FAST_TEXT, catalog) or EXTRACTIVE_MODEL_ID
    )
    remote_id = remote_llm_id(state)
    # A model asked for by name is honoured; otherwise the operator's LLM writes, if the plan
    # allows it (free plans list their models, so it is off there unless listed).
    remote = remote_id is not None and body.model_id is None and model_allowed(plan, remote_id)
    async with audited_denial(
        state, caller, correlation_id, requested, inputs, action=AuditAction.RESEARCH_GENERATED
    ):
        for kind in written_kinds:
            check_features(
                plan,
                state.plans,
                workspace_id=caller.workspace_id,
                text_task=_TASK_OF[kind],
                modality=Modality.TEXT,
                model_id=requested,
            )
        installations = {
            mid: inst
            for mid, inst in (await state.store.list_installations(caller.workspace_id)).items()
            if model_allowed(plan, mid)
        }
        resolution = resolve_model(
            requested,
            ModelTask.FAST_TEXT,
            catalog=catalog,
            installations=installations,
            live_pools=await live_pools(state),
            allow_extractive=model_allowed(plan, EXTRACTIVE_MODEL_ID),
        )
        entry = next((e for e in catalog if e.model_id == resolution.resolved_model_id), None)
        metering = metering_for(state, resolution, entry)
        if remote:
            # The remote LLM bills by token and runs on no GPU of ours.
            metering = Metering(tokens=True, gpu=False)
        # What a prompt holds of each source (insight_prompts cuts abstracts).
        source_chars = sum(
            len(s.title) + min(len(s.abstract or ""), DEFAULT_MAX_CHARS_PER_SOURCE) for s in sources
        )
        per_kind = state.settings.research_max_tokens
        quota = await reserve(
            state,
            caller,
            plan,
            job_id,
            tokens=token_estimate(
                prompt_chars=len(body.question or ""),
                context_chars=source_chars * len(written_kinds),
                images=0,
                max_tokens=per_kind * len(written_kinds) or 1,
            )
            if written_kinds
            else 0,
            metering=metering,
        )
    try:
        queued_at = datetime.now(UTC)
        payload = InsightsRequested(
            job_id=job_id,
            session_id=session_id,
            kinds=body.kinds,
            question=body.question,
            sources=sources,
            requested_model_id=body.model_id,
            model_id=resolution.resolved_model_id,
            fallback_reason=resolution.fallback_reason,
            pool=resolution.pool,
            target=engine_target(resolution, installations.get(resolution.resolved_model_id)),
            pricing=entry.pricing if entry else None,
            max_tokens=per_kind,
            remote_llm=remote,
            queued_at=queued_at,
            quota=quota,
        )
        event = Envelope[InsightsRequested](
            event_type="research.insights-requested",
            correlation_id=correlation_id,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            occurred_at=queued_at,
            payload=payload,
        )
        await state.store.jobs.insert_job(
            InferenceJob(
                job_id=job_id,
                workspace_id=caller.workspace_id,
                user_id=caller.user_id,
                task=ModelTask.FAST_TEXT,
                requested_model_id=requested,
                model_id=payload.model_id,
                fallback_reason=payload.fallback_reason,
                pool=payload.pool,
                engine=payload.target.engine,
                revision_sha=payload.target.revision_sha,
                context_refs=[f"research:{session_id}"],
                inputs=inputs,
                progress=JobProgress(max_tokens=per_kind),
                timings=JobTimings(queued_at=queued_at),
            )
        )
        await queue_admitted(
            state,
            caller,
            correlation_id,
            event,
            topic=RESEARCH_INSIGHTS_REQUESTED,
            key=session_id,
            model_id=payload.model_id,
            inputs=[InputRef(ref=f"job:{job_id}"), *inputs],
            reason=payload.fallback_reason,
            action=AuditAction.RESEARCH_GENERATED,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await release(state.store, job_id, Outcome.FAILED)
        raise
    base = f"/research/sessions/{session_id}"
    return InsightsAccepted(
        job_id=job_id,
        session_id=session_id,
        kinds=body.kinds,
        links=InsightLinks(
            job=f"/ai/jobs/{job_id}", session=base, export=f"{base}/export?format=markdown"
        ),
    )


def _inputs(session_id: str, question: str | None, sources: list[ResearchSource]) -> list[InputRef]:
    """The job's inputs by ref and hash (an audit record never holds their text)."""
    refs = [InputRef(ref=f"research:{session_id}")]
    if question:
        refs.append(InputRef(ref="question", sha256=_sha256(question)))
    for source in sources:
        ref = source.source_id
        if len(ref) > 200:  # an InputRef holds 200 characters; a DOI may be longer
            ref = f"{source.provider.value}:sha256:{_sha256(ref)[:32]}"
        text = f"{source.title}\n{source.abstract or ''}"
        refs.append(InputRef(ref=ref, sha256=_sha256(text)))
    return refs


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
