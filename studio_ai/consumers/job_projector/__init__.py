"""Consumer group `job-projector`: folds the ai.inference-* events into inference_jobs, and
releases a finished job's unconsented images. Group `metrics-recorder` (metrics_recorder.py)
keeps analytics.inference-metrics.v1 for GET /ai/metrics/models."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.job_projector.on_job_events import (
    project_cancelled,
    project_completed,
    project_failed,
    project_progressed,
)
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceProgressed,
)
from studio_ai.schemas.topics import (
    INFERENCE_CANCELLED,
    INFERENCE_COMPLETED,
    INFERENCE_FAILED,
    INFERENCE_PROGRESSED,
)

GROUP = "job-projector"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store, publisher = deps.store, deps.publisher

    subscriber = group_subscriber(router, group_id)

    @subscriber(INFERENCE_PROGRESSED.name)
    async def on_progressed(event: Envelope[InferenceProgressed]) -> None:
        await project_progressed(event, store)

    @subscriber(INFERENCE_COMPLETED.name)
    async def on_completed(event: Envelope[InferenceCompleted]) -> None:
        await project_completed(event, store, publisher)

    @subscriber(INFERENCE_FAILED.name)
    async def on_failed(event: Envelope[InferenceFailed]) -> None:
        await project_failed(event, store, publisher)

    @subscriber(INFERENCE_CANCELLED.name)
    async def on_cancelled(event: Envelope[InferenceCancelled]) -> None:
        await project_cancelled(event, store, publisher)

    return router
