"""Consumer group `insights-worker`: writes research insights
(on_insights_requested.py, writers.py)."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.insights_worker.on_insights_requested import (
    InsightsRunner,
    worker_id_for,
)
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.research import InsightsRequested
from studio_ai.schemas.topics import RESEARCH_INSIGHTS_REQUESTED

GROUP = "insights-worker"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    runner = InsightsRunner(
        settings=deps.settings,
        store=deps.store,
        publisher=deps.publisher,
        worker_id=worker_id_for(group_id),
    )
    deps.closers.append(runner.aclose)
    router = KafkaRouter()

    @group_subscriber(router, group_id)(RESEARCH_INSIGHTS_REQUESTED.name)
    async def on_insights_requested(event: Envelope[InsightsRequested]) -> None:
        await runner.handle(event)

    return router
