"""A key exists only with its audit record: when the record cannot be published, the key is
removed again; the record names the key by id only."""

from __future__ import annotations

from typing import Any

import pytest

from studio_ai.domain.identity import Role, hash_api_key
from studio_ai.producers.keys import KeyNotAudited, create_api_key


class Keys:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def insert_api_key(self, document: dict[str, Any]) -> None:
        self.docs[document["key_hash"]] = document


class Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[tuple[str, str, str]] = []

    async def publish(self, topic: Any, event: Any, *, key: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append((topic.name, key, event.model_dump_json()))


async def test_the_key_is_audited_by_id_only() -> None:
    store, publisher = Keys(), Publisher()
    key_id, key = await create_api_key(
        store,  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        workspace_id="ws",
        user_id="bob",
        role=Role.MEMBER,
        created_by="operator:carol",
        correlation_id="c-1",
    )
    assert list(store.docs) == [hash_api_key(key)]
    [(topic, partition_key, body)] = publisher.published
    assert (topic, partition_key) == ("audit.recorded.v1", "ws")
    assert f'"ref":"key:{key_id}"' in body and '"user_id":"operator:carol"' in body
    assert key not in body and hash_api_key(key) not in body


async def test_a_key_whose_record_cannot_be_published_is_removed() -> None:
    store = Keys()
    with pytest.raises(KeyNotAudited, match="broker down"):
        await create_api_key(
            store,  # type: ignore[arg-type]
            Publisher(fail=True),  # type: ignore[arg-type]
            workspace_id="ws",
            user_id="bob",
            role=Role.ADMIN,
            created_by="operator:carol",
            correlation_id="c-1",
        )
    assert store.docs == {}
