"""Inference job commands behind the /ai API besides admission (job_admission.py): job
reads, cancel, the model selector and defaults, and the per-model metrics summary."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

from studio_ai.domain.catalog import find_entry
from studio_ai.domain.errors import InvalidInput, NotFound
from studio_ai.domain.fallback import (
    BUILTIN_POOL,
    EXTRACTIVE_MODEL_ID,
)
from studio_ai.domain.identity import Caller
from studio_ai.domain.inference_job import (
    InferenceJob,
    cancellable,
    cancellation_event_id,
)
from studio_ai.domain.latency_stats import ModelStats, summarize_models
from studio_ai.domain.model_installation import percent_done
from studio_ai.domain.plans import check_model
from studio_ai.producers.gateway.context import GatewayState, HttpProblem
from studio_ai.producers.governance import workspace_plan
from studio_ai.producers.job_admission import (
    catalog_for,
    check_known,
    default_model,
    live_pools,
)
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    InferenceCancelled,
)
from studio_ai.schemas.inference_api import (
    CancelAccepted,
    JobView,
    ProgressView,
    ResultView,
    SelectorList,
    SelectorModel,
)
from studio_ai.schemas.models import Modality, ModelStatus, ModelTask
from studio_ai.schemas.topics import INFERENCE_CANCELLED

log = logging.getLogger(__name__)

_WINDOW = re.compile(r"^(\d{1,4})([mhd])$")


# --- reads and cancel -------------------------------------------------------------------


def parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise InvalidInput(f"job id {job_id[:60]!r} is not a UUID") from None


async def get_job(state: GatewayState, caller: Caller, job_id: str) -> JobView:
    job = await _own_job(state, caller, job_id)
    cancel_requested = False
    if not job.status.terminal:
        cancel_requested = bool(await state.store.jobs.cancelled_among([job.job_id]))
    return job_view(job, cancel_requested=cancel_requested)


async def _own_job(state: GatewayState, caller: Caller, job_id: str) -> InferenceJob:
    job = await state.store.jobs.get_job(parse_job_id(job_id), caller.workspace_id)
    if job is None:
        raise NotFound(f"no job {job_id} in this workspace")
    return job


async def list_jobs(state: GatewayState, caller: Caller, limit: int) -> list[JobView]:
    return [job_view(j) for j in await state.store.jobs.list_jobs(caller.workspace_id, limit=limit)]


async def cancel_job(
    state: GatewayState, caller: Caller, job_id: str, correlation_id: str
) -> CancelAccepted:
    job = await _own_job(state, caller, job_id)
    cancellable(job)
    # Milliseconds, as the store keeps them: a worker that re-publishes this cancellation from
    # the stored row then publishes the very same event.
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    try:
        await _audit_cancel(state, caller, job, correlation_id)
    except Exception as exc:
        log.exception("could not publish the cancellation's audit record")
        raise HttpProblem(
            503,
            "broker_unavailable",
            "the event broker did not accept the cancellation's audit record; nothing was "
            "changed, ask again",
            {"Retry-After": "5"},
        ) from exc
    await state.store.jobs.insert_cancellation(
        job.job_id, workspace_id=caller.workspace_id, requested_by=caller.user_id, requested_at=now
    )
    event = Envelope[InferenceCancelled](
        event_id=cancellation_event_id(job.job_id),
        event_type="ai.inference-cancelled",
        correlation_id=correlation_id,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        payload=InferenceCancelled(job_id=job.job_id, cancelled_at=now),
    )
    try:
        await state.publisher.publish(INFERENCE_CANCELLED, event, key=str(job.job_id))
    except Exception as exc:
        # The cancellation is recorded: a worker that picks the job up publishes it then.
        log.exception("could not publish the cancellation")
        raise HttpProblem(
            503,
            "broker_unavailable",
            "the cancellation is recorded, but the event broker did not accept its event; the "
            "job stops when a worker reaches it, or ask again",
            {"Retry-After": "5"},
        ) from exc
    return CancelAccepted(job_id=job.job_id)


async def _audit_cancel(
    state: GatewayState, caller: Caller, job: InferenceJob, correlation_id: str
) -> None:
    await publish_audit(
        state.publisher,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        action=AuditAction.INFERENCE_CANCELLED,
        outcome=AuditOutcome.ACCEPTED,
        correlation_id=correlation_id,
        model_id=job.model_id,
        inputs_refs=[InputRef(ref=f"job:{job.job_id}")],
        audit_id=audit_id_for(AuditAction.INFERENCE_CANCELLED, str(job.job_id)),
    )


def job_view(job: InferenceJob, *, cancel_requested: bool = False) -> JobView:
    return JobView(
        job_id=job.job_id,
        status=job.status,
        task=job.task,
        text_task=job.text_task,
        requested_model_id=job.requested_model_id,
        resolved_model_id=job.model_id,
        fallback_reason=job.fallback_reason,
        engine=job.engine,
        pool=job.pool,
        model_revision=job.revision_sha,
        progress=ProgressView(
            tokens_generated=job.progress.tokens_generated,
            max_tokens=job.progress.max_tokens,
            percent=percent_done(job.progress.tokens_generated, job.progress.max_tokens),
        ),
        result=ResultView(**job.result.model_dump()) if job.result else None,
        error=job.error,
        timings=job.timings,
        usage=job.usage,
        context_refs=job.context_refs,
        image_refs=job.image_refs,
        cancel_requested=cancel_requested,
    )


# --- model selector and defaults --------------------------------------------------------


async def selector(state: GatewayState, caller: Caller, task: ModelTask) -> SelectorList:
    catalog = await catalog_for(state, caller)
    installations = await state.store.list_installations(caller.workspace_id)
    pools = await live_pools(state)
    default = await default_model(state, caller, task, catalog)
    models: list[SelectorModel] = []
    for entry in (e for e in catalog if e.task is task):
        inst = installations.get(entry.model_id)
        status = inst.status if inst else ModelStatus.AVAILABLE
        percent = inst.progress.percent if inst and inst.progress else None
        pool = inst.runtime.pool if inst and inst.runtime else None
        models.append(
            SelectorModel(
                model_id=entry.model_id,
                display_name=entry.display_name,
                modality=entry.modality,
                availability=status.value,
                percent=percent if status is ModelStatus.DOWNLOADING else None,
                pool=pool if status is ModelStatus.INSTALLED else None,
                live=status is ModelStatus.INSTALLED and pool in pools,
                default=entry.model_id == default,
            )
        )
    if task is ModelTask.FAST_TEXT:
        models.append(
            SelectorModel(
                model_id=EXTRACTIVE_MODEL_ID,
                display_name="Extractive (built in: sentences chosen from the input)",
                modality=Modality.TEXT,
                availability="installed",
                pool=BUILTIN_POOL,
                live=BUILTIN_POOL in pools,
                default=default == EXTRACTIVE_MODEL_ID,
                builtin=True,
            )
        )
    return SelectorList(task=task, default_model_id=default, models=models)


async def set_default(
    state: GatewayState, caller: Caller, task: ModelTask, model_id: str
) -> SelectorList:
    catalog = await catalog_for(state, caller)
    check_known(model_id, task, catalog)
    plan = await workspace_plan(state, caller.workspace_id)
    check_model(plan, state.plans, workspace_id=caller.workspace_id, model_id=model_id)
    if model_id != EXTRACTIVE_MODEL_ID:
        own = [e for e in catalog if e not in state.catalog]
        entry, _ = find_entry(model_id, state.catalog, own)
        if entry.task is not task:
            raise InvalidInput(
                f"model {model_id!r} does {entry.task.value} work; it cannot be the default for "
                f"{task.value}"
            )
    elif task is not ModelTask.FAST_TEXT:
        raise InvalidInput(f"{EXTRACTIVE_MODEL_ID!r} can only be the default for fast_text")
    await state.store.jobs.set_default_model(caller.workspace_id, task, model_id)
    state.cache.pop(f"defaults:{caller.workspace_id}", None)
    return await selector(state, caller, task)


# --- metrics ----------------------------------------------------------------------------


def parse_window(window: str) -> timedelta:
    match = _WINDOW.match(window)
    if match is None:
        raise InvalidInput(f"window {window!r} is not valid: use e.g. 15m, 1h, 24h or 7d")
    amount, unit = int(match.group(1)), match.group(2)
    span = timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    if not timedelta(minutes=1) <= span <= timedelta(days=31):
        raise InvalidInput(f"window {window!r} must be between 1m and 31d")
    return span


async def model_metrics(
    state: GatewayState, caller: Caller, window: str
) -> tuple[timedelta, list[ModelStats]]:
    span = parse_window(window)
    records = await state.store.jobs.metrics_since(caller.workspace_id, datetime.now(UTC) - span)
    return span, summarize_models(records, window_s=span.total_seconds())
