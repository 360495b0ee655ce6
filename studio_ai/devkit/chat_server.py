"""A scripted OpenAI-compatible chat completions server for tests, benchmarks and `make run`.

It answers like vLLM, TGI or `transformers serve` do, without a model: after `latency_ms`
it emits `tokens` tokens (`token_text` each, at most the request's `max_tokens`),
`token_interval_ms` apart. Everything is asyncio (no thread per request), so a 2-core machine
holds hundreds of concurrent streams.

- `POST /v1/chat/completions`: `stream: true` sends SSE `data: {...}` chunks with
  `choices[0].delta.content`, a final chunk with `finish_reason` and `usage`, then
  `data: [DONE]`; otherwise one `chat.completion` JSON.
- `GET /v1/models`, `GET /health`.
- Knobs (`ChatServer.configure` or `POST /_control` with a JSON object of knobs):
  `latency_ms`, `token_interval_ms`, `tokens`, `token_text`, `fail_first` (answer the next N
  requests with `fail_status`), `fail_status`, `always_fail_status`, `model`.
  `POST /_control/reset` restores the knobs given at start and zeroes the counters.
- Counters (`ChatServer.state()` or `GET /_state`, together with the knobs): `requests`,
  `failed`, `in_flight`, `peak_in_flight`, `completed`, `cancelled` (the client left before the
  answer was complete).

    python -m studio_ai.devkit.chat_server --port 8001 --latency-ms 500 --tokens 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from typing_extensions import Unpack

from studio_ai.devkit.background import BackgroundServer, bound_socket, uvicorn_server


@dataclass(frozen=True)
class ChatKnobs:
    """How the server answers; changeable while it runs."""

    latency_ms: float = 0.0
    token_interval_ms: float = 0.0
    tokens: int = 16
    token_text: str = "tok "  # noqa: S105 - not a secret
    fail_first: int = 0
    fail_status: int = 503
    always_fail_status: int | None = None
    model: str = "chat-server"


class KnobChanges(TypedDict, total=False):
    """Keyword arguments of `ChatServer.configure` (the knobs to change)."""

    latency_ms: float
    token_interval_ms: float
    tokens: int
    token_text: str
    fail_first: int
    fail_status: int
    always_fail_status: int | None
    model: str


class _ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0)
    token_interval_ms: float | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    token_text: str | None = None
    fail_first: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=400, le=599)
    always_fail_status: int | None = Field(default=None, ge=400, le=599)
    model: str | None = None


@dataclass(frozen=True)
class ChatCounters:
    requests: int = 0
    failed: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    completed: int = 0
    cancelled: int = 0


class ChatState:
    """Knobs and counters shared by the server's event loop and the caller's threads."""

    def __init__(self, defaults: ChatKnobs) -> None:
        self._lock = threading.Lock()
        self._defaults = defaults
        self.knobs = defaults
        self.counters = ChatCounters()

    def configure(self, **changes: Unpack[KnobChanges]) -> ChatKnobs:
        with self._lock:
            self.knobs = replace(self.knobs, **changes)
            return self.knobs

    def reset(self) -> None:
        """Factory knobs and zero counters; requests still running stay in `in_flight`."""
        with self._lock:
            self.knobs = self._defaults
            live = self.counters.in_flight
            self.counters = ChatCounters(in_flight=live, peak_in_flight=live)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self.knobs), **asdict(self.counters)}

    def admit(self) -> tuple[ChatKnobs, int | None]:
        """Count a request; returns the knobs it runs with and the error status it gets, if any."""
        with self._lock:
            knobs, c = self.knobs, self.counters
            status = knobs.always_fail_status
            if status is None and knobs.fail_first > 0:
                status = knobs.fail_status
                self.knobs = replace(knobs, fail_first=knobs.fail_first - 1)
            if status is not None:
                self.counters = replace(c, requests=c.requests + 1, failed=c.failed + 1)
            else:
                in_flight = c.in_flight + 1
                self.counters = replace(
                    c,
                    requests=c.requests + 1,
                    in_flight=in_flight,
                    peak_in_flight=max(c.peak_in_flight, in_flight),
                )
            return knobs, status

    def finish(self, *, completed: bool) -> None:
        with self._lock:
            c = self.counters
            self.counters = replace(
                c,
                in_flight=max(c.in_flight - 1, 0),
                completed=c.completed + int(completed),
                cancelled=c.cancelled + int(not completed),
            )


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}},
        status_code=status,
    )


def _prompt_tokens(messages: list[Any]) -> int:
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            words += sum(
                len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict)
            )
    return words


@dataclass
class _Plan:
    """One accepted request: what to send, and the counters to settle once it ends."""

    state: ChatState
    knobs: ChatKnobs
    model: str
    count: int
    finish_reason: str
    prompt_tokens: int
    id: str
    created: int
    settled: bool = False

    def settle(self, *, completed: bool) -> None:
        """Leave `in_flight` as completed or cancelled; only the first call counts."""
        if not self.settled:
            self.settled = True
            self.state.finish(completed=completed)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.count,
            "total_tokens": self.prompt_tokens + self.count,
        }

    def chunk(self, delta: dict[str, str], finish: str | None = None) -> str:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if finish is not None:
            body["usage"] = self.usage()
        return f"data: {json.dumps(body)}\n\n"


class _AccountedStream(StreamingResponse):
    """A stream whose request counts as cancelled if it ends before the body settled it.

    Under ASGI spec < 2.4 (uvicorn) Starlette cancels the body when the client disconnects
    and returns normally, so only the body itself knows that it got to the end.
    """

    def __init__(self, plan: _Plan) -> None:
        super().__init__(_stream(plan), media_type="text/event-stream")
        self._plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._plan.settle(completed=False)


async def _stream(plan: _Plan) -> AsyncIterator[str]:
    knobs = plan.knobs
    await asyncio.sleep(knobs.latency_ms / 1000)
    for n in range(plan.count):
        if n:
            await asyncio.sleep(knobs.token_interval_ms / 1000)
        delta = (
            {"role": "assistant", "content": knobs.token_text}
            if n == 0
            else {"content": knobs.token_text}
        )
        yield plan.chunk(delta)
    yield plan.chunk({}, plan.finish_reason)
    # Starlette asks for the next item only once it has sent the last one: the finish chunk
    # is out. Settle before [DONE], so that a client that has read it sees the counters final.
    plan.settle(completed=True)
    yield "data: [DONE]\n\n"


async def _sleep_unless_disconnected(request: Request, seconds: float) -> bool:
    """Sleep; True if the whole time passed, False if the client went away first."""
    deadline = time.monotonic() + seconds
    listener = asyncio.ensure_future(request.receive())
    try:
        while True:
            timeout = max(deadline - time.monotonic(), 0)
            done, _ = await asyncio.wait({listener}, timeout=timeout)
            if not done:
                return True
            if listener.result().get("type") == "http.disconnect":
                return False
            listener = asyncio.ensure_future(request.receive())  # a stray body message
    finally:
        listener.cancel()


def create_chat_app(state: ChatState) -> Starlette:
    """The ASGI app; `state` holds its knobs and counters."""

    async def completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "the body must be a JSON object with a messages list", "invalid")
        knobs, status = state.admit()
        if status is not None:
            return _error(status, f"scripted failure (HTTP {status})", "server_error")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        count = knobs.tokens if not isinstance(limit, int) else min(knobs.tokens, limit)
        plan = _Plan(
            state=state,
            knobs=knobs,
            model=str(body.get("model") or knobs.model),
            count=count,
            finish_reason="length" if isinstance(limit, int) and count >= limit else "stop",
            prompt_tokens=_prompt_tokens(body["messages"]),
            id=f"chatcmpl-{time.monotonic_ns():x}",
            created=int(time.time()),
        )
        if body.get("stream"):
            return _AccountedStream(plan)
        wait_s = (knobs.latency_ms + max(count - 1, 0) * knobs.token_interval_ms) / 1000
        completed = False
        try:
            completed = await _sleep_unless_disconnected(request, wait_s)
        finally:
            plan.settle(completed=completed)
        message = {"role": "assistant", "content": knobs.token_text * count}
        return JSONResponse(
            {
                "id": plan.id,
                "object": "chat.completion",
                "created": plan.created,
                "model": plan.model,
                "choices": [{"index": 0, "message": message, "finish_reason": plan.finish_reason}],
                "usage": plan.usage(),
            }
        )

    async def models(request: Request) -> Response:
        model = state.knobs.model
        return JSONResponse(
            {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "devkit"}]}
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def get_state(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def control(request: Request) -> Response:
        try:
            changes = _ControlBody.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return _error(422, str(exc), "invalid_request_error")
        state.configure(**changes.model_dump(exclude_unset=True))
        return JSONResponse(state.snapshot())

    async def control_reset(request: Request) -> Response:
        state.reset()
        return JSONResponse(state.snapshot())

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/_state", get_state, methods=["GET"]),
            Route("/_control", control, methods=["POST"]),
            Route("/_control/reset", control_reset, methods=["POST"]),
        ]
    )


class ChatServer(BackgroundServer):
    """Runs the chat app with uvicorn in a background thread: `with ChatServer() as s: s.url`
    (the base URL without /v1, which OpenAICompatibleEngine takes)."""

    thread_name = "chat-server"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, **knobs: Unpack[KnobChanges]
    ) -> None:
        super().__init__(host, port)
        self._state = ChatState(ChatKnobs(**knobs))
        self.app = create_chat_app(self._state)

    def configure(self, **changes: Unpack[KnobChanges]) -> ChatKnobs:
        """Change the given knobs on the running server; returns all of them."""
        return self._state.configure(**changes)

    def reset(self) -> None:
        """Restore the knobs given at construction and zero the counters."""
        self._state.reset()

    def state(self) -> dict[str, Any]:
        """Knobs and counters, as `GET /_state` answers them."""
        return self._state.snapshot()

    @property
    def knobs(self) -> ChatKnobs:
        return self._state.knobs

    @property
    def counters(self) -> ChatCounters:
        return self._state.counters

    def wait_for(
        self, condition: Callable[[ChatCounters], bool], timeout: float = 5.0
    ) -> ChatCounters:
        """Poll the counters until `condition` holds (TimeoutError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not condition(counters := self._state.counters):
            if time.monotonic() > deadline:
                raise TimeoutError(f"counters never matched: {counters}")
            time.sleep(0.01)
        return counters


def main(argv: list[str] | None = None) -> None:
    """CLI: serve until SIGTERM or SIGINT (uvicorn shuts down cleanly, then dies of the signal)."""
    parser = argparse.ArgumentParser(description="A scripted OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="time to the first token")
    parser.add_argument("--token-interval-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=16, help="tokens per answer")
    parser.add_argument("--model", default="chat-server")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--always-fail-status", type=int, default=None)
    args = parser.parse_args(argv)

    state = ChatState(
        ChatKnobs(
            latency_ms=args.latency_ms,
            token_interval_ms=args.token_interval_ms,
            tokens=args.tokens,
            model=args.model,
            fail_first=args.fail_first,
            fail_status=args.fail_status,
            always_fail_status=args.always_fail_status,
        )
    )
    sock = bound_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"chat server at http://{host}:{port}", flush=True)
    uvicorn_server(create_chat_app(state)).run(sockets=[sock])


if __name__ == "__main__":
    main()
