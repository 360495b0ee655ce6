"""What every engine takes and returns, its typed errors, and bounded retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio_ai.domain.extractive import Source
from studio_ai.schemas.inference import TextTask

log = logging.getLogger(__name__)

TokenCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class GenerationRequest:
    """Chat messages in the OpenAI format (content may be a list of text/image_url parts).

    `task`, `prompt` and `sources` carry the job as it was asked, for engines that work on
    the material itself rather than on rendered messages (the extractive engine).
    """

    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float | None = None
    task: TextTask = TextTask.FREE
    prompt: str = ""
    sources: tuple[Source, ...] = field(default_factory=tuple)


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    first_token_s: float | None = None  # seconds from the request to the first token
    total_s: float = 0.0


class EngineError(Exception):
    """An engine failure; `retryable` says whether the same request may succeed later."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Engine(Protocol):
    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult: ...


async def generate_with_retries(
    engine: Engine,
    request: GenerationRequest,
    *,
    attempts: int,
    backoff_s: float,
    on_token: TokenCallback | None = None,
    on_retry: Callable[[EngineError], None] | None = None,
) -> GenerationResult:
    """Retry retryable failures with doubling backoff; the last error says how often it tried."""
    for attempt in range(1, attempts + 1):
        try:
            return await engine.generate(request, on_token=on_token)
        except EngineError as exc:
            if not exc.retryable or attempt == attempts:
                if exc.retryable and attempt > 1:
                    exc.message = f"{exc.message} (after {attempt} attempts)"
                    exc.args = (exc.message,)
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning(
                "engine call failed; retrying",
                extra={"attempt": attempt, "code": exc.code, "error": exc.message},
            )
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
