"""Creating API keys (operators run `studio-ai keys create`).

A key exists only with its audit record: it is stored, its key.created record is published,
and if the broker refuses the record the key is removed again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.identity import Role, hash_api_key, key_id_of, new_api_key, validate_name
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.runtime.broker import EventPublisher
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef


class KeyNotAudited(Exception):
    """The key's audit record could not be published, so the key was removed again."""


async def create_api_key(
    store: MongoStore,
    publisher: EventPublisher,
    *,
    workspace_id: str,
    user_id: str,
    role: Role,
    created_by: str,
    correlation_id: str,
) -> tuple[str, str]:
    """Store a new key's hash and audit it; return (key_id, key). The key itself is never
    stored, and neither it nor its hash goes into the audit record."""
    validate_name("workspace", workspace_id)
    validate_name("user", user_id)
    key = new_api_key()
    key_hash = hash_api_key(key)
    key_id = key_id_of(key_hash)
    # Audited first: a key that exists always has its record (a record of a key whose insert
    # then failed does less harm than a live key nobody recorded).
    try:
        await publish_audit(
            publisher,
            workspace_id=workspace_id,
            user_id=created_by,
            action=AuditAction.KEY_CREATED,
            outcome=AuditOutcome.DONE,
            correlation_id=correlation_id,
            inputs_refs=[InputRef(ref=f"key:{key_id}")],
            reason=f"API key for user {user_id!r} with role {role.value!r}",
            audit_id=audit_id_for(AuditAction.KEY_CREATED, key_id),
        )
    except Exception as exc:
        raise KeyNotAudited(f"{type(exc).__name__}: {exc}") from exc
    await store.insert_api_key(
        {
            "key_hash": key_hash,
            "key_id": key_id,
            "workspace_id": workspace_id,
            "user_id": user_id,
            "role": role.value,
            "created_at": datetime.now(UTC),
            "revoked": False,
        }
    )
    return key_id, key
