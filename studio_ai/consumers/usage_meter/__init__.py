"""Consumer group `usage-meter`: settles each job's quota reservation when the job ends.

A job is settled from its one recorded outcome (job_outcomes, claimed with a unique insert by
whoever ends the job), not from the topic an event came on, so the ledger agrees with what the
worker did: a completed job is charged the tokens and GPU-seconds it used, a failed or
cancelled one gives its reservation back. A caller's cancellation of a job that no worker has
ended yet is claimed here as the job's outcome (the worker then republishes it instead of
running the job, as when it finds the cancellation itself).

Idempotency: a job's settlement is claimed with a unique insert, so duplicates, republished
events and replays change nothing.
"""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.consumers.usage_meter.settle_outcome import settle_recorded_outcome
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCancelled, InferenceCompleted, InferenceFailed
from studio_ai.schemas.topics import INFERENCE_CANCELLED, INFERENCE_COMPLETED, INFERENCE_FAILED

GROUP = "usage-meter"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store = deps.store
    subscriber = group_subscriber(router, group_id)

    @subscriber(INFERENCE_COMPLETED.name)
    async def on_completed(event: Envelope[InferenceCompleted]) -> None:
        await settle_recorded_outcome(store, event)

    @subscriber(INFERENCE_FAILED.name)
    async def on_failed(event: Envelope[InferenceFailed]) -> None:
        await settle_recorded_outcome(store, event)

    @subscriber(INFERENCE_CANCELLED.name)
    async def on_cancelled(event: Envelope[InferenceCancelled]) -> None:
        await settle_recorded_outcome(store, event)

    return router
