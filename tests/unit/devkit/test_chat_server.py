"""The scripted chat server, driven through the project's OpenAI-compatible engine."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from studio_ai.adapters.engines.base import EngineError, GenerationRequest, generate_with_retries
from studio_ai.adapters.engines.openai_compatible import OpenAICompatibleEngine
from studio_ai.devkit.chat_server import ChatServer


@pytest.fixture(scope="module")
def running() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


@pytest.fixture
def server(running: ChatServer) -> Iterator[ChatServer]:
    running.reset()
    yield running
    running.wait_for(lambda c: c.in_flight == 0)
    running.reset()


@pytest.fixture
async def engine(server: ChatServer) -> AsyncIterator[OpenAICompatibleEngine]:
    engine = OpenAICompatibleEngine(server.url, model="m")
    yield engine
    await engine.aclose()


def ask(max_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": "say hi"}], max_tokens=max_tokens
    )


async def test_streams_tokens_with_usage_and_honours_max_tokens(
    server: ChatServer, engine: OpenAICompatibleEngine
) -> None:
    server.configure(tokens=5, latency_ms=20)
    seen: list[str] = []

    async def on_token(token: str) -> None:
        seen.append(token)

    full = await engine.generate(ask(), on_token=on_token)
    assert (full.text, full.completion_tokens, full.finish_reason) == ("tok " * 5, 5, "stop")
    assert seen == ["tok "] * 5
    assert full.prompt_tokens == 2
    assert full.first_token_s is not None and full.first_token_s >= 0.02

    cut = await engine.generate(ask(max_tokens=3))
    assert (cut.text, cut.completion_tokens, cut.finish_reason) == ("tok " * 3, 3, "length")
    counters = server.counters
    assert (counters.requests, counters.completed, counters.cancelled) == (2, 2, 0)
    assert counters.in_flight == 0


async def test_non_streaming_models_health_and_control_over_http(server: ChatServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        control = await http.post("/_control", json={"tokens": 2, "latency_ms": 1})
        assert control.status_code == 200 and control.json()["tokens"] == 2
        assert (await http.post("/_control", json={"nope": 1})).status_code == 422
        answer = (
            await http.post(
                "/v1/chat/completions",
                json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            )
        ).json()
        assert answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"]["content"] == "tok tok "
        assert answer["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        assert (await http.get("/v1/models")).json()["data"][0]["id"] == "chat-server"
        assert (await http.get("/health")).status_code == 200
        state = (await http.get("/_state")).json()
        assert (state["requests"], state["completed"], state["latency_ms"]) == (1, 1, 1)
        bad = await http.post("/v1/chat/completions", json={"messages": "no"})
        assert bad.status_code == 400 and "message" in bad.json()["error"]


async def test_fail_first_then_success_through_retries(
    server: ChatServer, engine: OpenAICompatibleEngine
) -> None:
    server.configure(fail_first=2, tokens=3)
    result = await generate_with_retries(engine, ask(), attempts=3, backoff_s=0.01)
    assert result.text == "tok " * 3
    counters = server.counters
    assert (counters.requests, counters.failed, counters.completed) == (3, 2, 1)
    assert server.knobs.fail_first == 0


async def test_always_failing_is_a_retryable_engine_error(
    server: ChatServer, engine: OpenAICompatibleEngine
) -> None:
    server.configure(always_fail_status=503)
    with pytest.raises(EngineError) as failure:
        await generate_with_retries(engine, ask(), attempts=3, backoff_s=0.01)
    assert failure.value.retryable and failure.value.code == "overloaded"
    assert "HTTP 503" in failure.value.message and "after 3 attempts" in failure.value.message
    assert server.counters.failed == 3

    server.configure(always_fail_status=400)
    with pytest.raises(EngineError) as permanent:
        await engine.generate(ask())
    assert not permanent.value.retryable


async def test_64_concurrent_streams_overlap(
    server: ChatServer, engine: OpenAICompatibleEngine
) -> None:
    server.configure(latency_ms=300, tokens=8)
    started = time.perf_counter()
    results = await asyncio.gather(*(engine.generate(ask()) for _ in range(64)))
    elapsed = time.perf_counter() - started
    assert all(r.completion_tokens == 8 for r in results)
    counters = server.counters
    assert counters.peak_in_flight == 64 and counters.completed == 64
    assert elapsed < 3.0, f"64 requests of 0.3 s took {elapsed:.2f} s"  # sequential: 19.2 s


async def test_a_client_that_leaves_mid_stream_is_counted_cancelled(server: ChatServer) -> None:
    server.configure(tokens=1000, token_interval_ms=20)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["choices"][0]["delta"]["content"] == "tok "
                break
    counters = await asyncio.to_thread(server.wait_for, lambda c: c.cancelled == 1)
    assert (counters.in_flight, counters.completed) == (0, 0)


async def test_a_client_cancelled_during_the_latency_is_counted_cancelled(
    server: ChatServer, engine: OpenAICompatibleEngine
) -> None:
    server.configure(latency_ms=5000)
    task = asyncio.create_task(engine.generate(ask()))
    await asyncio.to_thread(server.wait_for, lambda c: c.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counters = await asyncio.to_thread(server.wait_for, lambda c: c.cancelled == 1)
    assert counters.in_flight == 0


async def test_a_non_streaming_client_that_times_out_is_counted_cancelled(
    server: ChatServer,
) -> None:
    server.configure(latency_ms=5000)
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/chat/completions", json=body)
    counters = await asyncio.to_thread(server.wait_for, lambda c: c.cancelled == 1)
    assert (counters.in_flight, counters.completed) == (0, 0)


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "studio_ai.devkit.chat_server", "--port", "0", "--tokens", "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" at ")[1].strip()
        answer = None
        deadline = time.monotonic() + 10
        while answer is None:
            try:
                answer = httpx.post(
                    f"{url}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
                )
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the CLI server never answered"
                time.sleep(0.05)
        assert answer.json()["usage"]["completion_tokens"] == 3
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal: the usual way to end on one.
        assert process.wait(timeout=10) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
