"""audit.recorded.v1 -> audit_records (the append-only audit log behind GET /admin/audit).

Group: audit-recorder. Idempotency: one document per audit id (a unique insert), so a
republished record, a redelivery or a replay of the topic from offset 0 keeps each record once.
A message that is not a valid record goes to audit.recorded.v1.dlq (the delivery guard).
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.runtime.delivery import PermanentError
from studio_ai.schemas.audit import AuditRecorded
from studio_ai.schemas.envelope import Envelope


async def record_audit(event: Envelope[AuditRecorded], store: MongoStore) -> None:
    if event.workspace_id != event.payload.workspace_id:
        raise PermanentError(
            f"audit record {event.payload.audit_id} names workspace "
            f"{event.payload.workspace_id!r} but its envelope {event.workspace_id!r}; the "
            "publisher must set both to the workspace acted on"
        )
    await store.audit.insert(event.payload)
