"""Consumer group `audit-recorder`: keeps every audit.recorded.v1 record in audit_records,
once per audit id (on_audit_recorded.py)."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from studio_ai.consumers.audit_recorder.on_audit_recorded import record_audit
from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.subscriber import group_subscriber
from studio_ai.schemas.audit import AuditRecorded
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.topics import AUDIT_RECORDED

GROUP = "audit-recorder"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store = deps.store

    @group_subscriber(router, group_id)(AUDIT_RECORDED.name)
    async def on_audit_recorded(event: Envelope[AuditRecorded]) -> None:
        await record_audit(event, store)

    return router
