"""A job's one recorded outcome (job_outcomes) and the events that announce it, shared by the
inference worker and the insights worker.

An outcome is recorded by a unique insert before its events are published; whoever finds one
recorded publishes that same outcome again (same event ids), so a job never ends twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.inference_cost import job_cost
from studio_ai.domain.inference_job import cancellation_event_id
from studio_ai.runtime.broker import EventPublisher
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    EngineName,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceMetrics,
    JobStatus,
    JobTimings,
    QuotaReservation,
    Usage,
)
from studio_ai.schemas.models import Pricing, PricingBasis
from studio_ai.schemas.topics import (
    INFERENCE_CANCELLED,
    INFERENCE_COMPLETED,
    INFERENCE_FAILED,
    INFERENCE_METRICS,
)

log = logging.getLogger(__name__)

Outcome = dict[str, Any]


def job_metrics(
    *,
    job_id: uuid.UUID,
    workspace_id: str,
    model_id: str,
    engine: EngineName,
    pool: str,
    completed: bool,
    usage: Usage,
    timings: JobTimings,
    pricing: Pricing | None,
    gpu_seconds: float,
    default_usd_per_gpu_hour: float,
) -> InferenceMetrics:
    """The job's analytics.inference-metrics.v1 record: latency, tokens and cost."""
    assert timings.started_at and timings.finished_at and timings.queued_at
    if engine is EngineName.EXTRACTIVE:
        pricing = Pricing(basis=PricingBasis.FREE)
    cost, basis = job_cost(
        pricing,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        gpu_seconds=gpu_seconds,
        default_usd_per_gpu_hour=default_usd_per_gpu_hour,
    )
    generating_from = timings.first_token_at or timings.started_at
    generating_s = (timings.finished_at - generating_from).total_seconds()
    return InferenceMetrics(
        job_id=job_id,
        workspace_id=workspace_id,
        model_id=model_id,
        engine=engine,
        pool=pool,
        outcome=JobStatus.COMPLETED if completed else JobStatus.FAILED,
        queue_ms=_ms(timings.started_at - timings.queued_at),
        ttft_ms=_ms(timings.first_token_at - timings.started_at)
        if timings.first_token_at
        else None,
        total_ms=_ms(timings.finished_at - timings.queued_at),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        tokens_per_s=usage.completion_tokens / generating_s if generating_s > 0 else 0.0,
        cost=cost,
        cost_basis=basis,
        gpu_seconds=round(gpu_seconds, 6),
        finished_at=timings.finished_at,
    )


def ended_outcome(
    event: Envelope[Any],
    terminal: Envelope[Any],
    metrics: Envelope[Any],
    *,
    completed: bool,
    worker_id: str,
    **extra: Any,
) -> Outcome:
    return {
        "kind": "completed" if completed else "failed",
        "workspace_id": event.workspace_id,
        "terminal": terminal.model_dump_json(serialize_as_any=True),
        "metrics": metrics.model_dump_json(serialize_as_any=True),
        "worker_id": worker_id,
        "recorded_at": datetime.now(UTC),
        **extra,
    }


def cancelled_outcome(
    event: Envelope[Any], job_id: uuid.UUID, cancelled_at: datetime, *, worker_id: str
) -> Outcome:
    """The job ends cancelled; the worker publishes the cancellation too (same event id as
    the gateway's), so the job ends even if the gateway's publish was lost."""
    cancelled = Envelope[InferenceCancelled](
        event_id=cancellation_event_id(job_id),
        event_type="ai.inference-cancelled",
        correlation_id=event.correlation_id,
        causation_id=event.event_id,
        workspace_id=event.workspace_id,
        user_id=event.user_id,
        payload=InferenceCancelled(job_id=job_id, cancelled_at=cancelled_at),
    )
    return {
        "kind": "cancelled",
        "workspace_id": event.workspace_id,
        "terminal": cancelled.model_dump_json(),
        "worker_id": worker_id,
        "recorded_at": datetime.now(UTC),
    }


async def publish_recorded(publisher: EventPublisher, outcome: Outcome) -> InferenceMetrics | None:
    """Publish a recorded outcome's terminal event (and metrics record); returns the metrics
    record it published, if any."""
    kind = outcome.get("kind")
    if not outcome.get("terminal"):
        return None  # an outcome recorded by an older version: nothing to publish
    if kind == "cancelled":
        cancelled = Envelope[InferenceCancelled].model_validate_json(outcome["terminal"])
        await publisher.publish(INFERENCE_CANCELLED, cancelled, key=str(cancelled.payload.job_id))
        return None
    terminal: Envelope[Any]
    if kind == "completed":
        terminal = Envelope[InferenceCompleted].model_validate_json(outcome["terminal"])
        topic = INFERENCE_COMPLETED
    else:
        terminal = Envelope[InferenceFailed].model_validate_json(outcome["terminal"])
        topic = INFERENCE_FAILED
    job_id = str(terminal.payload.job_id)
    if not outcome.get("metrics"):  # failed at the gateway: it never ran
        await publisher.publish(topic, terminal, key=job_id)
        return None
    metrics = Envelope[InferenceMetrics].model_validate_json(outcome["metrics"])
    record = metrics.payload
    await asyncio.gather(
        publisher.publish(topic, terminal, key=job_id),
        publisher.publish(INFERENCE_METRICS, metrics, key=record.model_id),
    )
    return record


async def settle_before_announcing(
    store: MongoStore, quota: QuotaReservation | None, outcome: Outcome
) -> None:
    """Settle the job's quota reservation by its outcome before its end is announced, so a
    caller who sees the job end has its concurrency slot back. Only for workspaces with a
    concurrency limit: the others lose nothing by waiting for the usage-meter consumer, which
    settles every job from the events (once per job), so a failure here only delays it."""
    if quota is None or not quota.settle_at_end:
        return
    try:
        await store.quotas.settle_outcome(uuid.UUID(outcome["_id"]), outcome, reservation=quota)
    except Exception:
        log.warning(
            "could not settle the job's quota here; the usage meter will",
            exc_info=True,
            extra={"job_id": outcome.get("_id")},
        )


def _ms(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds() * 1000)
