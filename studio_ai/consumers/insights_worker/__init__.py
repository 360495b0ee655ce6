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
POLL_MARGIN_S = 300.0  # loading a model, the extractive fallback, recording and publishing


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    runner = InsightsRunner(
        settings=deps.settings,
        store=deps.store,
        publisher=deps.publisher,
        worker_id=worker_id_for(group_id),
    )
    deps.closers.append(runner.aclose)
    router = KafkaRouter()

    # A job may wait for its LLM up to the deadline; the group must not think it died.
    poll_ms = int((deps.settings.research_llm_deadline_s + POLL_MARGIN_S) * 1000)

    @group_subscriber(router, group_id, max_poll_interval_ms=poll_ms)(
        RESEARCH_INSIGHTS_REQUESTED.name
    )
    async def on_insights_requested(event: Envelope[InsightsRequested]) -> None:
        await runner.handle(event)

    return router
