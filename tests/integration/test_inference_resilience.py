"""Inference workers against a real OpenAI-compatible server (the devkit's chat server):
retries, cancel, a SIGKILL with 50 jobs in flight, and a replay of the job topics."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from studio_ai.devkit.chat_server import ChatServer
from studio_ai.runtime.topic_admin import group_caught_up
from tests.integration.test_inference_jobs import install, submit, wait_job
from tests.support.flows import add_private_model, new_workspace, read_topic
from tests.support.stack import TINY_LLAMA, Stack, free_port, kafka_bootstrap, wait_until


@dataclass
class ServedModel:
    client: httpx.Client
    model_id: str
    pool: str
    chat: ChatServer
    worker: str

    def restart_worker(self, stack: Stack, *extra: str) -> None:
        stack.start_inference(self.worker, (self.pool,), *extra)
        wait_live(self.client, self.model_id)


def wait_live(client: httpx.Client, model_id: str) -> None:
    def live() -> bool:
        models = client.get("/ai/models", params={"task": "fast_text"}).json()["models"]
        return any(m["model_id"] == model_id and m["live"] for m in models)

    wait_until(live, timeout=60, what=f"a live worker for {model_id}")


def serve(stack: Stack, name: str, *worker_args: str) -> Iterator[ServedModel]:
    """A tiny model installed in a fresh workspace, served by a chat server through the vllm
    engine, with its own pool and worker."""
    suffix = uuid.uuid4().hex[:6]
    _, client = new_workspace(stack, name)
    model_id = f"chat-{suffix}/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    install(stack, client, model_id)
    chat = ChatServer(port=free_port())
    chat.start()
    pool = f"{name}-{suffix}"
    response = client.put(
        f"/admin/models/{model_id}/runtime",
        json={"engine": "vllm", "endpoint_url": chat.url, "pool": pool},
    )
    assert response.status_code == 200, response.text
    served = ServedModel(client, model_id, pool, chat, f"inference-{pool}")
    served.restart_worker(stack, *worker_args)
    try:
        yield served
    finally:
        if served.worker in stack.procs:
            stack.kill(served.worker)
        chat.stop()


@pytest.fixture
def served(stack: Stack) -> Iterator[ServedModel]:
    yield from serve(stack, "chat")


def test_a_server_that_fails_twice_then_recovers_completes_the_job(served: ServedModel) -> None:
    served.chat.configure(fail_first=2, fail_status=503, tokens=5)
    accepted = submit(served.client, model_id=served.model_id, prompt="Hello", max_tokens=5)
    assert accepted["resolved_model_id"] == served.model_id and accepted["engine"] == "vllm"
    job = wait_job(served.client, accepted["job_id"])
    assert job["status"] == "completed", job
    assert job["usage"]["completion_tokens"] == 5
    assert served.chat.state()["requests"] == 3


def test_a_server_that_never_recovers_fails_the_job_with_a_retryable_error(
    served: ServedModel,
) -> None:
    served.chat.configure(always_fail_status=503)
    accepted = submit(served.client, model_id=served.model_id, prompt="Hello")
    job = wait_job(served.client, accepted["job_id"])
    assert job["status"] == "failed", job
    assert job["error"]["retryable"] is True
    assert "after 3 attempts" in job["error"]["message"]
    assert "503" in job["error"]["message"]


def test_cancelling_a_running_job_stops_the_servers_request(served: ServedModel) -> None:
    served.chat.configure(latency_ms=20_000)
    accepted = submit(served.client, model_id=served.model_id, prompt="Hello")
    job_id = accepted["job_id"]
    wait_until(
        lambda: served.client.get(f"/ai/jobs/{job_id}").json()["status"] == "running",
        timeout=30,
        what="the job to run",
    )
    wait_until(lambda: served.chat.state()["in_flight"] == 1, timeout=10, what="the request")
    response = served.client.post(f"/ai/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    job = wait_job(served.client, job_id, timeout=20)
    assert job["status"] == "cancelled"
    wait_until(
        lambda: served.chat.state()["cancelled"] == 1, timeout=10, what="the request to close"
    )
    again = served.client.post(f"/ai/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


@pytest.fixture
def served_one_at_a_time(stack: Stack) -> Iterator[ServedModel]:
    yield from serve(stack, "single", "--max-in-flight", "1")


def test_a_queued_job_that_is_cancelled_never_reaches_the_server(
    served_one_at_a_time: ServedModel,
) -> None:
    served = served_one_at_a_time
    served.chat.configure(latency_ms=3000, tokens=3)
    first = submit(served.client, model_id=served.model_id, prompt="first")
    wait_until(lambda: served.chat.state()["in_flight"] == 1, timeout=20, what="the first job")
    second = submit(served.client, model_id=served.model_id, prompt="second")
    assert served.client.get(f"/ai/jobs/{second['job_id']}").json()["status"] == "queued"
    assert served.client.post(f"/ai/jobs/{second['job_id']}/cancel").status_code == 202
    assert wait_job(served.client, second["job_id"])["status"] == "cancelled"
    assert wait_job(served.client, first["job_id"])["status"] == "completed"
    third = submit(served.client, model_id=served.model_id, prompt="third")
    assert wait_job(served.client, third["job_id"])["status"] == "completed"
    assert served.chat.state()["requests"] == 2  # first and third; the second never went


def _group_caught_up(group: str, topics: list[str]) -> bool:
    return asyncio.run(group_caught_up(kafka_bootstrap(), group, topics))


def test_sigkill_with_50_jobs_in_flight_then_every_job_ends_once_and_replay_changes_nothing(
    stack: Stack, served: ServedModel
) -> None:
    served.chat.configure(latency_ms=8000, tokens=4)
    jobs = [
        submit(served.client, model_id=served.model_id, prompt=f"job {n}", max_tokens=4)["job_id"]
        for n in range(50)
    ]
    wait_until(
        lambda: served.chat.state()["in_flight"] >= 40, timeout=30, what="most jobs in flight"
    )
    stack.kill(served.worker, signal.SIGKILL)
    served.restart_worker(stack)
    ended = [wait_job(served.client, job_id, timeout=120) for job_id in jobs]
    assert [j["status"] for j in ended] == ["completed"] * 50

    completions: dict[str, set[str]] = {}
    for _, _, body in read_topic("ai.inference-completed.v1"):
        job_id = body.get("payload", {}).get("job_id")
        if job_id in jobs:
            completions.setdefault(job_id, set()).add(body["event_id"])
    assert sorted(completions) == sorted(jobs)
    assert all(len(ids) == 1 for ids in completions.values()), "a job completed twice"
    assert not any(
        body.get("payload", {}).get("job_id") in jobs
        for _, _, body in read_topic("ai.inference-failed.v1")
    )

    def stats() -> dict[str, Any] | None:
        body = served.client.get("/ai/metrics/models", params={"window": "1h"}).json()
        model = next((m for m in body["models"] if m["model_id"] == served.model_id), None)
        return model if model and model["jobs"] == 50 else None

    before_stats = wait_until(stats, timeout=30, what="50 metrics records")
    before = {j: served.client.get(f"/ai/jobs/{j}").json() for j in jobs}

    # Replay: the job projector and the metrics recorder read their topics again from 0.
    replay = f"replay-{uuid.uuid4().hex[:6]}"
    stack.start(
        replay,
        "worker",
        "run",
        "--group",
        "job-projector",
        "--group-id",
        replay,
        "--metrics-port",
        str(free_port()),
    )
    stack.start(
        replay + "-m",
        "worker",
        "run",
        "--group",
        "metrics-recorder",
        "--group-id",
        replay + "-m",
        "--metrics-port",
        str(free_port()),
    )
    try:
        topics = [
            "ai.inference-progressed.v1",
            "ai.inference-completed.v1",
            "ai.inference-failed.v1",
            "ai.inference-cancelled.v1",
        ]
        wait_until(lambda: _group_caught_up(replay, topics), timeout=120, what="the replay")
        wait_until(
            lambda: _group_caught_up(replay + "-m", ["analytics.inference-metrics.v1"]),
            timeout=120,
            what="the metrics replay",
        )
    finally:
        stack.kill(replay)
        stack.kill(replay + "-m")
    after = {j: served.client.get(f"/ai/jobs/{j}").json() for j in jobs}
    assert after == before
    assert stats() == before_stats


def test_the_event_stream_shows_progress_then_the_final_status(served: ServedModel) -> None:
    served.chat.configure(tokens=12, token_interval_ms=150)
    accepted = submit(served.client, model_id=served.model_id, prompt="Hello", max_tokens=12)
    events: list[tuple[str, dict[str, Any]]] = []
    with served.client.stream(
        "GET", f"/ai/jobs/{accepted['job_id']}/events", params={"poll_s": 0.1}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line[5:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "status" and kinds.count("status") == 1
    assert events[-1][1]["status"] == "completed"
    running = [body for kind, body in events if kind == "progress" and body["status"] == "running"]
    assert any(0 < b["progress"]["tokens_generated"] < 12 for b in running), kinds
    tokens = [b["progress"]["tokens_generated"] for _, b in events]
    assert tokens == sorted(tokens)


def test_a_pool_without_a_live_worker_falls_back_with_the_reason(
    stack: Stack, served: ServedModel
) -> None:
    stack.kill(served.worker)  # a clean stop removes the heartbeat at once

    def not_live() -> bool:
        models = served.client.get("/ai/models", params={"task": "fast_text"}).json()["models"]
        return not next(m for m in models if m["model_id"] == served.model_id)["live"]

    wait_until(not_live, timeout=10, what="the selector to show the pool without a worker")
    accepted = submit(served.client, model_id=served.model_id, prompt="Weight fell. It was safe.")
    assert accepted["resolved_model_id"] == "studio-ai/extractive"
    assert f"pool '{served.pool}'" in accepted["fallback_reason"]
    assert "no live worker" in accepted["fallback_reason"]
    job = wait_job(served.client, accepted["job_id"])
    assert job["status"] == "completed"
    assert job["fallback_reason"] == accepted["fallback_reason"]
    assert served.chat.state()["requests"] == 0


def test_a_poison_job_message_is_dead_lettered_and_the_worker_goes_on(
    served: ServedModel,
) -> None:
    topic = f"ai.inference-requested.{served.pool}.v1"

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap())
        await producer.start()
        try:
            await producer.send_and_wait(topic, b'{"not": "a job"}', key=b"poison")
        finally:
            await producer.stop()

    asyncio.run(publish())
    dead = wait_until(
        lambda: [r for r in read_topic(f"{topic}.dlq") if r[0] == b"poison"],
        timeout=30,
        what="the poison message in the DLQ",
    )
    headers = dead[0][1]
    assert "does not match the event schema" in headers["dlq_reason"]
    assert headers["dlq_source_topic"] == topic
    accepted = submit(served.client, model_id=served.model_id, prompt="after the poison")
    assert wait_job(served.client, accepted["job_id"])["status"] == "completed"
