"""Consumer group `usage-meter`: settles each job's quota reservation when the job ends.

ai.inference-completed charges the tokens and GPU-seconds the job used (in place of its
reservation); ai.inference-failed and ai.inference-cancelled give the reservation back.
Idempotency: a job's settlement is claimed with a unique insert, so the first terminal event
settles it and duplicates, republished events and replays change nothing.
"""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.domain.quotas import Outcome
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCancelled, InferenceCompleted, InferenceFailed
from studio_ai.schemas.topics import INFERENCE_CANCELLED, INFERENCE_COMPLETED, INFERENCE_FAILED

GROUP = "usage-meter"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    ledger = deps.store.quotas

    subscriber = group_subscriber(router, group_id)

    @subscriber(INFERENCE_COMPLETED.name)
    async def on_completed(event: Envelope[InferenceCompleted]) -> None:
        usage = event.payload.usage
        await ledger.settle_job(
            event.payload.job_id,
            Outcome.COMPLETED,
            tokens_used=usage.prompt_tokens + usage.completion_tokens,
            gpu_seconds=event.payload.gpu_seconds,
        )

    @subscriber(INFERENCE_FAILED.name)
    async def on_failed(event: Envelope[InferenceFailed]) -> None:
        await ledger.settle_job(event.payload.job_id, Outcome.FAILED)

    @subscriber(INFERENCE_CANCELLED.name)
    async def on_cancelled(event: Envelope[InferenceCancelled]) -> None:
        await ledger.settle_job(event.payload.job_id, Outcome.CANCELLED)

    return router
