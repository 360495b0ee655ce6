"""Per-process gateway state and the FastAPI dependencies that hand it to routes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.adapters.research.base import ResearchProvider
from studio_ai.domain.identity import Caller, Role, hash_api_key
from studio_ai.runtime.broker import EventPublisher
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import CatalogEntry
from studio_ai.schemas.plans import Plan
from studio_ai.schemas.research import ProviderName


class HttpProblem(Exception):
    """An error answered as {error, detail} with an HTTP status."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra or {}


@dataclass
class GatewayState:
    settings: Settings
    store: MongoStore
    publisher: EventPublisher
    catalog: list[CatalogEntry]
    plans: dict[str, Plan]
    cache: dict[str, Any] = field(default_factory=dict)
    known_topics: set[str] = field(default_factory=set)
    research_providers: dict[ProviderName, ResearchProvider] = field(default_factory=dict)


T = TypeVar("T")

_CACHE_LIMIT = 10_000
_KEY_CACHE_S = 10.0


async def cached(
    state: GatewayState, key: str, ttl_s: float, load: Callable[[], Awaitable[T]]
) -> T:
    """`load()`'s answer, reused for `ttl_s` seconds in this gateway process.

    For reads that every job admission repeats (its caller's key, the workspace's catalog,
    the live pools): at a hundred jobs a second they would otherwise dominate the store's load.
    """
    now = time.monotonic()
    hit = state.cache.get(key)
    if hit is not None and now - hit[0] < ttl_s:
        value: T = hit[1]
        return value
    value = await load()
    if len(state.cache) >= _CACHE_LIMIT:
        state.cache.clear()
    state.cache[key] = (now, value)
    return value


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


async def get_caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HttpProblem(
            401,
            "unauthenticated",
            "send an API key as 'Authorization: Bearer <key>'; an operator creates one with "
            "`studio-ai keys create --workspace W --user U --role member`",
            {"WWW-Authenticate": "Bearer"},
        )
    key = authorization[7:].strip()
    state = get_state(request)
    key_hash = hash_api_key(key)
    cache_key = f"key:{key_hash}"
    hit = state.cache.get(cache_key)
    if hit is not None and time.monotonic() - hit[0] < _KEY_CACHE_S:
        doc = hit[1]
    else:
        doc = await state.store.find_api_key(key_hash)
        if doc is not None:  # unknown keys are never remembered
            if len(state.cache) >= _CACHE_LIMIT:
                state.cache.clear()
            state.cache[cache_key] = (time.monotonic(), doc)
    if doc is None:
        raise HttpProblem(
            401,
            "unauthenticated",
            "the API key is unknown or revoked",
            {"WWW-Authenticate": "Bearer"},
        )
    return Caller(
        workspace_id=doc["workspace_id"],
        user_id=doc["user_id"],
        role=Role(doc["role"]),
        key_id=doc["key_id"],
    )


async def require_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if not caller.is_admin:
        raise HttpProblem(
            403,
            "forbidden",
            f"/admin needs an admin key; user {caller.user_id!r} has role {caller.role.value!r} in "
            f"workspace {caller.workspace_id!r}",
        )
    return caller


async def require_operator(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.role is not Role.OPERATOR:
        raise HttpProblem(
            403,
            "forbidden",
            f"/operator needs an operator key; user {caller.user_id!r} has role "
            f"{caller.role.value!r}. An operator creates one with `studio-ai keys create "
            "--workspace <ops workspace> --user <name> --role operator`",
        )
    return caller


State = Annotated[GatewayState, Depends(get_state)]
AdminCaller = Annotated[Caller, Depends(require_admin)]
AnyCaller = Annotated[Caller, Depends(get_caller)]
OperatorCaller = Annotated[Caller, Depends(require_operator)]
