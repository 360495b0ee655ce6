"""What every research provider offers, its typed error, and the shared request rules:
bounded retries with doubling backoff, Retry-After, and a per-process pace for providers that
ask for one (arXiv).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, Protocol, get_args

import httpx

from studio_ai.domain.errors import DomainError, InvalidInput
from studio_ai.schemas.research import ProviderName, ResearchSource

log = logging.getLogger(__name__)

ErrorKind = Literal["unavailable", "rate_limited", "malformed", "not_found", "invalid_id"]
ERROR_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))

MAX_SEARCH_LIMIT = 100
MAX_QUERY_CHARS = 500
# Retry-After up to this long is waited for; a server that asks for more is not retried now.
MAX_RETRY_AFTER_S = 10.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# The setting that says where each provider is, for messages about reaching it.
BASE_URL_SETTINGS = {
    ProviderName.CROSSREF: "STUDIO_CROSSREF_BASE_URL",
    ProviderName.ARXIV: "STUDIO_ARXIV_BASE_URL",
}

_CODES: dict[str, str] = {
    "unavailable": "provider_unavailable",
    "rate_limited": "provider_rate_limited",
    "malformed": "provider_bad_response",
    "not_found": "not_found",
    "invalid_id": "invalid_input",
}
# A provider's rate limit is 503 to our callers: 429 would say that *they* asked too much.
_HTTP_STATUS: dict[str, int] = {
    "unavailable": 503,
    "rate_limited": 503,
    "malformed": 502,
    "not_found": 404,
    "invalid_id": 422,
}


class ProviderError(DomainError):
    """A provider could not give what was asked. `kind` is one of `ERROR_KINDS`:

    - `unavailable`: it cannot be reached, timed out or kept failing (retryable later);
    - `rate_limited`: it asks us to slow down; `retry_after_s` says for how long, if it said;
    - `malformed`: it answered something that cannot be read;
    - `not_found`: it has no work with that id;
    - `invalid_id`: the id is not one that provider can look up.

    `message` names the provider and says what to do; `code` and `http_status` are what an API
    answers with.
    """

    def __init__(
        self,
        provider: ProviderName,
        kind: ErrorKind,
        message: str,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        super().__init__(message)
        self.provider = provider
        self.kind: ErrorKind = kind
        self.retry_after_s = retry_after_s
        self.code = _CODES[kind]

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later."""
        return self.kind in ("unavailable", "rate_limited")

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.kind]

    def __repr__(self) -> str:
        return f"ProviderError({self.provider.value!r}, {self.kind!r}, {self.message!r})"


class ResearchProvider(Protocol):
    """A source of scholarly works. `get` raises ProviderError (`not_found`, `invalid_id`,
    `unavailable`, `rate_limited`, `malformed`); `search` returns at most `limit` works, best
    first, `[]` when nothing matches, and raises InvalidInput for an empty query or a `limit`
    outside 1..MAX_SEARCH_LIMIT."""

    name: ProviderName

    async def get(self, external_id: str) -> ResearchSource: ...

    async def search(self, query: str, limit: int) -> list[ResearchSource]: ...

    async def aclose(self) -> None: ...


def checked_query(provider: ProviderName, query: str, limit: int) -> str:
    """The query with outer whitespace removed; InvalidInput when it or `limit` is unusable."""
    text = query.strip()
    if not text:
        raise InvalidInput(f"the {provider.value} search query is empty; give some words to search")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"the {provider.value} search query has {len(text)} characters; "
            f"shorten it to at most {MAX_QUERY_CHARS}"
        )
    if not text.isprintable():
        raise InvalidInput(
            f"the {provider.value} search query has control characters; use plain words"
        )
    if isinstance(limit, bool) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, not {limit}")
    return text


def package_version() -> str:
    try:
        return version("studio-ai")
    except PackageNotFoundError:
        return "0+unknown"


def user_agent(mailto: str | None = None) -> str:
    """`studio-ai/<version> (https://github.com/databiomics/studio-ai; mailto:<mailto>)`."""
    contact = f"; mailto:{mailto}" if mailto else ""
    return f"studio-ai/{package_version()} (https://github.com/databiomics/studio-ai{contact})"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _wait_hint(retry_after_s: float | None) -> str:
    if retry_after_s is None:
        return "try again later"
    return f"try again in {max(1, math.ceil(retry_after_s))} s"


async def send_with_retries(
    provider: ProviderName,
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    target: str,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
) -> httpx.Response:
    """Call `send` until it gives an answer that is not transient, at most `attempts` times.

    Connect errors, timeouts, other transport errors, 408, 429 and 5xx are transient: the next
    try waits `backoff_s`, then twice that, and so on, or the Retry-After the server sent when it
    is longer. A Retry-After above `max_retry_after_s` ends the tries at once (the error carries
    it in `retry_after_s`). Every other response (200, 404, 400...) is returned to the caller.
    `target` (scheme://host:port, never a query string) names the server in messages.
    """
    name = provider.value
    failure: ProviderError | None = None
    for attempt in range(1, attempts + 1):
        wait = backoff_s * 2 ** (attempt - 1)
        try:
            response = await send()
        except httpx.UnsupportedProtocol:
            raise ProviderError(
                provider,
                "unavailable",
                f"{name} cannot be reached: its address {target!r} is not an http(s) URL; "
                f"set {BASE_URL_SETTINGS.get(provider, 'its base URL')} to one",
            ) from None
        except httpx.TimeoutException as exc:
            reason = type(exc).__name__
            failure = ProviderError(
                provider,
                "unavailable",
                f"{name} is unavailable (no answer from {target} within {timeout_s:g} s, "
                f"{_attempts(attempt)}); try again later",
            )
        except httpx.ConnectError:
            reason = "ConnectError"
            setting = BASE_URL_SETTINGS.get(provider)
            check = f"check the network and {setting}" if setting else "check the network"
            failure = ProviderError(
                provider,
                "unavailable",
                f"{name} is unavailable (cannot connect to {target} after "
                f"{_attempts(attempt)}); {check}, or try again later",
            )
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            failure = ProviderError(
                provider,
                "unavailable",
                f"{name} is unavailable (the connection to {target} failed: {reason}, after "
                f"{_attempts(attempt)}); try again later",
            )
        else:
            status = response.status_code
            if status not in RETRY_STATUSES and status < 500:
                return response
            reason = f"HTTP {status}"
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if status == 429:
                failure = ProviderError(
                    provider,
                    "rate_limited",
                    f"{name} is rate limiting requests (HTTP 429 after {_attempts(attempt)}); "
                    f"{_wait_hint(retry_after)}",
                    retry_after_s=retry_after,
                )
            else:
                failure = ProviderError(
                    provider,
                    "unavailable",
                    f"{name} is unavailable (HTTP {status} after {_attempts(attempt)}); "
                    f"{_wait_hint(retry_after)}",
                    retry_after_s=retry_after,
                )
            if retry_after is not None:
                if retry_after > max_retry_after_s:
                    raise failure
                wait = max(wait, retry_after)
        if attempt < attempts:
            log.warning(
                "research provider request failed; retrying",
                extra={"provider": name, "attempt": attempt, "reason": reason, "wait_s": wait},
            )
            await asyncio.sleep(wait)
    assert failure is not None
    raise failure


class RequestGate:
    """Lets requests through one at a time, each starting at least `min_interval_s` after the
    previous one ended, within this process (arXiv asks for one request every 3 s on a single
    connection). The pace is shared by every event loop of the process; one-at-a-time holds
    within a loop."""

    def __init__(self) -> None:
        self._last_end: float | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
            return lock

    @asynccontextmanager
    async def slot(self, min_interval_s: float) -> AsyncIterator[None]:
        async with self._lock():
            if self._last_end is not None:
                # The loop's clock is time.monotonic, so this never wakes measurably early.
                wait = self._last_end + min_interval_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last_end = time.monotonic()


def server_label(base_url: str | httpx.URL) -> str:
    """`https://api.crossref.org` from a base URL: scheme, host and port, nothing else."""
    url = httpx.URL(str(base_url))
    if not url.host:
        return str(base_url)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def expect_ok(provider: ProviderName, response: httpx.Response) -> None:
    """A status the retries did not handle (an unexpected 4xx) as the provider's refusal."""
    if response.status_code != 200:
        raise ProviderError(
            provider,
            "unavailable",
            f"{provider.value} refused the request (HTTP {response.status_code}); try again later",
        )
