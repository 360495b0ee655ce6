"""Consumer group `session-projector`: keeps research insights on their sessions
(on_insight_generated.py)."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.session_projector.on_insight_generated import project_insights
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.research import InsightsGenerated
from studio_ai.schemas.topics import RESEARCH_INSIGHT_GENERATED

GROUP = "session-projector"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store = deps.store

    @group_subscriber(router, group_id)(RESEARCH_INSIGHT_GENERATED.name)
    async def on_insight_generated(event: Envelope[InsightsGenerated]) -> None:
        await project_insights(event, store)

    return router
