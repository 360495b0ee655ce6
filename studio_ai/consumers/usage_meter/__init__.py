"""Consumer group `usage-meter`: settles each job's quota reservation when the job ends.

ai.inference-completed charges the tokens and GPU-seconds the job used (in place of its
reservation); ai.inference-failed and ai.inference-cancelled give the reservation back.
Idempotency: a job's settlement is claimed with a unique insert, so the first terminal event
settles it and duplicates, republished events and replays change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.domain.quotas import Outcome
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCancelled, InferenceCompleted, InferenceFailed
from studio_ai.schemas.topics import INFERENCE_CANCELLED, INFERENCE_COMPLETED, INFERENCE_FAILED

GROUP = "usage-meter"

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    ledger = deps.store.quotas

    def subscriber(topic: str) -> Callable[[Handler], Handler]:
        return router.subscriber(  # type: ignore[return-value]
            topic,
            group_id=group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
        )

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
