"""Steps that several integration and end-to-end tests take."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from tests.support.stack import Stack, catalog_entry, kafka_bootstrap, wait_until


def new_workspace(stack: Stack, prefix: str = "ws") -> tuple[str, httpx.Client]:
    """A fresh workspace with an admin key, and a client using it."""
    workspace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return workspace, stack.client(stack.create_key(workspace, "admin-1", "admin"))


def add_private_model(client: httpx.Client, model_id: str, repo: str, **extra: Any) -> None:
    response = client.post("/admin/models", json=catalog_entry(model_id, repo, **extra))
    assert response.status_code == 201, response.text


def model(client: httpx.Client, model_id: str) -> dict[str, Any]:
    response = client.get(f"/admin/models/{model_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(
    stack: Stack, client: httpx.Client, model_id: str, statuses: set[str], timeout: float = 90
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{stack.log_tail(name)}")
        view = model(client, model_id)
        return view if view["status"] in statuses else None

    return wait_until(reached, timeout=timeout, what=f"{model_id} to be {statuses}")


def download(client: httpx.Client, model_id: str, transport: str = "hf_api") -> dict[str, Any]:
    response = client.post(
        "/admin/models/download", json={"model_id": model_id, "transport": transport}
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def read_topic(topic: str) -> list[tuple[bytes | None, dict[str, str], dict[str, Any]]]:
    """(key, headers, JSON body) of every record on `topic` so far; bodies that are not JSON
    objects come back as {}."""

    async def read() -> list[tuple[bytes | None, dict[str, str], dict[str, Any]]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records = []
            batches = await consumer.getmany(timeout_ms=3000)
            while batches:
                for batch in batches.values():
                    for record in batch:
                        try:
                            body = json.loads(record.value)
                        except ValueError:
                            body = {}
                        headers = {k: v.decode() for k, v in record.headers}
                        records.append(
                            (record.key, headers, body if isinstance(body, dict) else {})
                        )
                batches = await consumer.getmany(timeout_ms=1000)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(read())
