"""At-least-once delivery: crashes resume, replays change nothing, poison goes to the DLQ."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from huggingface_hub import HfApi
from pymongo import MongoClient

from studio_ai.consumers.app import create_consumer_app
from studio_ai.domain.model_ids import model_dir_name
from studio_ai.runtime.settings import Settings
from studio_ai.runtime.topic_admin import current_ranges, group_caught_up
from studio_ai.schemas.topics import MODEL_TOPICS
from tests.support.flows import add_private_model, download, model, new_workspace, wait_status
from tests.support.stack import TINY_LLAMA, Stack, kafka_bootstrap, wait_until


def test_downloader_killed_mid_download_resumes_and_installs(stack: Stack) -> None:
    _, client = new_workspace(stack, "sigkill")
    model_id = "tests-sigkill/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    stack.hub.configure(bytes_per_second=30_000)
    try:
        download(client, model_id)
        wait_until(
            lambda: (model(client, model_id).get("progress") or {}).get("files_done", 0) >= 2,
            timeout=60,
            what="the small files to be on disk while the weights download",
        )
        stack.kill("consumers", signal.SIGKILL)
        commit = HfApi(endpoint=stack.hub.url).model_info(TINY_LLAMA).sha
        model_dir = Path(stack.env["STUDIO_MODELS_DIR"]) / model_dir_name(model_id) / str(commit)
        finished_before_crash = {p.name for p in model_dir.iterdir() if p.is_file()}
        killed_at = model(client, model_id)
        requests_before_restart = len(stack.hub.state.request_log())
        assert killed_at["status"] == "downloading"
        assert killed_at["progress"]["percent"] < 100
        stack.hub.configure(bytes_per_second=None)
        stack.start_consumers()
        view = wait_status(stack, client, model_id, {"installed", "failed"}, timeout=120)
    finally:
        stack.hub.configure(bytes_per_second=None)
    assert view["status"] == "installed", view
    after = stack.hub.state.request_log()[requests_before_restart:]
    fetched_again = {
        r.path.rsplit("/", 1)[-1] for r in after if r.method == "GET" and "/resolve/" in r.path
    }
    assert "model.safetensors" in fetched_again
    assert finished_before_crash
    assert "model.safetensors" not in finished_before_crash
    assert not finished_before_crash & fetched_again, "finished files were fetched again"


def _snapshot(stack: Stack) -> list[dict[str, Any]]:
    with MongoClient(stack.env["STUDIO_MONGO_URL"], tz_aware=True) as mongo:
        docs = mongo[stack.env["STUDIO_MONGO_DB"]].model_installations.find().sort("_id", 1)
        return list(docs)


def test_replaying_the_models_topics_leaves_the_projection_unchanged(stack: Stack) -> None:
    _, client = new_workspace(stack, "replay")
    download(client, TINY_LLAMA)
    wait_status(stack, client, TINY_LLAMA, {"installed"})
    topics = [spec.name for spec in MODEL_TOPICS]
    ends = asyncio.run(current_ranges(kafka_bootstrap(), topics))
    assert any(end > start for start, end in ends.values())
    live_group = stack.env["STUDIO_CONSUMER_GROUP_PREFIX"] + "model-projector"
    wait_until(
        lambda: asyncio.run(group_caught_up(kafka_bootstrap(), live_group, topics, targets=ends)),
        timeout=60,
        what="the live projector to catch up",
    )
    before = _snapshot(stack)
    assert any(doc["status"] == "installed" for doc in before)

    async def replay() -> None:
        settings = Settings(
            kafka_bootstrap=stack.env["STUDIO_KAFKA_BOOTSTRAP"],
            mongo_url=stack.env["STUDIO_MONGO_URL"],
            mongo_db=stack.env["STUDIO_MONGO_DB"],
        )
        group = f"replay-{uuid.uuid4().hex[:8]}"
        app = create_consumer_app(
            settings, ["model-projector"], group_ids={"model-projector": group}
        )
        await app.broker.start()
        try:
            for _ in range(300):
                if await group_caught_up(kafka_bootstrap(), group, topics, targets=ends):
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("the replay did not reach the end of the topics in 60 s")
        finally:
            await app.broker.stop()
            await app.store.close()

    asyncio.run(replay())
    # Only this session's documents: the topics may also hold other sessions' events.
    ids = {doc["_id"] for doc in before}
    assert [doc for doc in _snapshot(stack) if doc["_id"] in ids] == before


def test_poison_messages_go_to_the_dlq_with_a_reason_and_the_consumer_moves_on(
    stack: Stack,
) -> None:
    marker = uuid.uuid4().hex

    async def publish_poison() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap())
        await producer.start()
        try:
            await producer.send_and_wait(
                "models.installed.v1", b"{not json", key=f"poison-{marker}".encode()
            )
            await producer.send_and_wait(
                "models.installed.v1",
                b'{"event_type": "models.installed"}',
                key=f"poison-{marker}".encode(),
            )
        finally:
            await producer.stop()

    async def read_dlq() -> list[dict[str, str]]:
        consumer = AIOKafkaConsumer(
            "models.installed.v1.dlq",
            bootstrap_servers=kafka_bootstrap(),
            auto_offset_reset="earliest",
        )
        await consumer.start()
        found: list[dict[str, str]] = []
        try:
            for _ in range(20):
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        if record.key == f"poison-{marker}".encode():
                            found.append({k: v.decode() for k, v in record.headers})
                if len(found) >= 2:
                    break
        finally:
            await consumer.stop()
        return found

    asyncio.run(publish_poison())
    dead = wait_until(
        lambda: len(found := asyncio.run(read_dlq())) >= 2 and found,
        timeout=60,
        what="two dead letters",
    )
    reasons = " | ".join(d["dlq_reason"] for d in dead)
    assert "schema" in reasons or "JSON" in reasons, reasons
    assert all(d["dlq_source_topic"] == "models.installed.v1" for d in dead)

    _, client = new_workspace(stack, "after-poison")
    download(client, TINY_LLAMA)
    assert wait_status(stack, client, TINY_LLAMA, {"installed", "failed"})["status"] == "installed"
