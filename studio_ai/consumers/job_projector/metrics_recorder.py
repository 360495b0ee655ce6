"""analytics.inference-metrics.v1 -> inference_metrics (for GET /ai/metrics/models).

Group: metrics-recorder. Idempotency: one document per event id (a unique insert), so a
replayed or republished record is stored once.
"""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceMetrics
from studio_ai.schemas.topics import INFERENCE_METRICS

GROUP = "metrics-recorder"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store = deps.store

    @group_subscriber(router, group_id)(INFERENCE_METRICS.name)
    async def on_metrics(event: Envelope[InferenceMetrics]) -> None:
        await store.jobs.insert_metrics(event.event_id, event.payload)

    return router
