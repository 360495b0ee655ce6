"""The OpenAI-compatible engine against a scripted server: streaming, usage and error mapping."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from studio_ai.adapters.engines.base import EngineError, GenerationRequest, generate_with_retries
from studio_ai.adapters.engines.openai_compatible import OpenAICompatibleEngine


class Script:
    """What the scripted server answers: `failures` error statuses first, then tokens."""

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.tokens = ["Hel", "lo", " world"]
        self.bodies: list[dict[str, Any]] = []


def _app(script: Script) -> Starlette:
    async def completions(request: Request) -> Response:
        script.bodies.append(await request.json())
        if script.failures:
            status = script.failures.pop(0)
            return JSONResponse({"error": f"scripted {status}"}, status_code=status)

        async def stream() -> AsyncIterator[str]:
            for token in script.tokens:
                chunk = {"choices": [{"index": 0, "delta": {"content": token}}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": len(script.tokens)},
            }
            yield f"data: {json.dumps(done)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(_app(script), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", script
    srv.should_exit = True
    thread.join(timeout=5)


REQUEST = GenerationRequest(
    messages=[
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ],
    max_tokens=16,
)


def test_tokens_stream_in_order_with_usage_and_image_parts_pass_through(
    server: tuple[str, Script],
) -> None:
    url, script = server
    seen: list[str] = []

    async def on_token(token: str) -> None:
        seen.append(token)

    async def run() -> Any:
        engine = OpenAICompatibleEngine(url, model="m")
        try:
            return await engine.generate(REQUEST, on_token=on_token)
        finally:
            await engine.aclose()

    result = asyncio.run(run())
    assert result.text == "Hello world"
    assert seen == ["Hel", "lo", " world"]
    assert (result.prompt_tokens, result.completion_tokens) == (7, 3)
    assert result.finish_reason == "stop"
    assert result.first_token_s is not None and result.first_token_s <= result.total_s
    assert script.bodies[0]["messages"][0]["content"][1]["type"] == "image_url"
    assert script.bodies[0]["stream"] is True


def test_a_server_that_answers_503_twice_then_recovers_completes(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.failures = [503, 503]

    async def run() -> Any:
        engine = OpenAICompatibleEngine(url, model="m")
        try:
            return await generate_with_retries(engine, REQUEST, attempts=3, backoff_s=0.01)
        finally:
            await engine.aclose()

    assert asyncio.run(run()).text == "Hello world"
    assert len(script.bodies) == 3


def test_a_server_that_never_recovers_fails_clearly_and_retryably(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.failures = [503] * 5

    async def run() -> None:
        engine = OpenAICompatibleEngine(url, model="m")
        try:
            await generate_with_retries(engine, REQUEST, attempts=3, backoff_s=0.01)
        finally:
            await engine.aclose()

    with pytest.raises(EngineError) as failure:
        asyncio.run(run())
    assert failure.value.retryable
    assert "HTTP 503" in failure.value.message and "after 3 attempts" in failure.value.message


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (422, False), (429, True), (504, True)]
)
def test_status_codes_map_to_retryable_or_permanent(
    server: tuple[str, Script], status: int, retryable: bool
) -> None:
    url, script = server
    script.failures = [status]

    async def run() -> None:
        engine = OpenAICompatibleEngine(url, model="m")
        try:
            await engine.generate(REQUEST)
        finally:
            await engine.aclose()

    with pytest.raises(EngineError) as failure:
        asyncio.run(run())
    assert failure.value.retryable is retryable
    assert f"HTTP {status}" in failure.value.message


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def run() -> None:
        engine = OpenAICompatibleEngine(f"http://127.0.0.1:{port}", model="m", connect_timeout_s=1)
        try:
            await engine.generate(REQUEST)
        finally:
            await engine.aclose()

    with pytest.raises(EngineError) as failure:
        asyncio.run(run())
    assert failure.value.retryable and failure.value.code == "unreachable"
