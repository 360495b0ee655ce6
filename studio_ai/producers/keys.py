"""Creating API keys (operators run `studio-ai keys create`)."""

from __future__ import annotations

from datetime import UTC, datetime

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.identity import Role, hash_api_key, key_id_of, new_api_key, validate_name


async def create_api_key(
    store: MongoStore, *, workspace_id: str, user_id: str, role: Role
) -> tuple[str, str]:
    """Store a new key's hash; return (key_id, key). The key itself is never stored."""
    validate_name("workspace", workspace_id)
    validate_name("user", user_id)
    key = new_api_key()
    key_hash = hash_api_key(key)
    await store.insert_api_key(
        {
            "key_hash": key_hash,
            "key_id": key_id_of(key_hash),
            "workspace_id": workspace_id,
            "user_id": user_id,
            "role": role.value,
            "created_at": datetime.now(UTC),
            "revoked": False,
        }
    )
    return key_id_of(key_hash), key
