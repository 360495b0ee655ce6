"""Publishing audit.recorded.v1 from the places that act on user data.

An audit record is published before the action's own event where there is one, so an action
that happened always has its record; the record's id is stable where the action has a stable
id (a job, an image), so a retried publish is kept once by the audit recorder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from studio_ai.runtime.broker import EventPublisher
from studio_ai.schemas.audit import AuditAction, AuditOutcome, AuditRecorded, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.topics import AUDIT_RECORDED

_AUDIT_NAMESPACE = uuid.UUID("0b5d3f4e-39c1-4c55-9a57-5f3a0d0c2b61")


def audit_id_for(action: AuditAction, subject: str) -> uuid.UUID:
    """The one audit id of `action` on `subject` (a job id, an image id ...)."""
    return uuid.uuid5(_AUDIT_NAMESPACE, f"{action.value}:{subject}")


def audit_event(
    *,
    workspace_id: str,
    user_id: str,
    action: AuditAction,
    outcome: AuditOutcome,
    correlation_id: str,
    model_id: str | None = None,
    inputs_refs: Iterable[InputRef] = (),
    reason: str | None = None,
    audit_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> Envelope[AuditRecorded]:
    record = AuditRecorded(
        audit_id=audit_id or uuid.uuid4(),
        workspace_id=workspace_id,
        user_id=user_id,
        action=action,
        model_id=model_id,
        inputs_refs=list(inputs_refs),
        outcome=outcome,
        reason=reason[:500] if reason else None,
        created_at=created_at or datetime.now(UTC),
        correlation_id=correlation_id,
    )
    return Envelope[AuditRecorded](
        event_id=record.audit_id,
        event_type="audit.recorded",
        correlation_id=correlation_id,
        workspace_id=workspace_id,
        user_id=user_id,
        occurred_at=record.created_at,
        payload=record,
    )


async def publish_audit(
    publisher: EventPublisher,
    *,
    workspace_id: str,
    user_id: str,
    action: AuditAction,
    outcome: AuditOutcome,
    correlation_id: str,
    model_id: str | None = None,
    inputs_refs: Iterable[InputRef] = (),
    reason: str | None = None,
    audit_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> AuditRecorded:
    """Publish one audit record (awaited: the caller fails if the broker refuses it)."""
    event = audit_event(
        workspace_id=workspace_id,
        user_id=user_id,
        action=action,
        outcome=outcome,
        correlation_id=correlation_id,
        model_id=model_id,
        inputs_refs=inputs_refs,
        reason=reason,
        audit_id=audit_id,
        created_at=created_at,
    )
    await publisher.publish(AUDIT_RECORDED, event, key=workspace_id)
    return event.payload
