"""Research sessions behind /research/sessions: create, list, read, attach and detach
sources from the providers, delete, and export.

Every read and write names the caller's workspace: another workspace's session is answered
404, the same as one that does not exist. A provider that is down, rate-limits or answers
nonsense gives a clear error naming it, and the session is left as it was.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from studio_ai.adapters.research.base import ProviderError
from studio_ai.adapters.research_store import insight_of, source_of
from studio_ai.domain.errors import Conflict, InvalidInput, NotFound
from studio_ai.domain.fallback import EXTRACTIVE_MODEL_ID
from studio_ai.domain.references import format_reference
from studio_ai.domain.research_export import session_markdown
from studio_ai.domain.source_ids import parse_source_id
from studio_ai.domain.source_ids import source_id as make_source_id
from studio_ai.producers.gateway.context import GatewayState, HttpProblem
from studio_ai.schemas.inference import EngineName
from studio_ai.schemas.research import Insight, InsightGenerator, ProviderName, ResearchSource
from studio_ai.schemas.research_api import (
    AttachedSource,
    AttachRequest,
    AttachResult,
    CitedReference,
    CreateSessionRequest,
    InsightView,
    SessionPage,
    SessionSummary,
    SessionView,
)

Document = dict[str, Any]

_SESSION_ID = re.compile(r"^rs_[0-9a-f]{32}$")
MAX_PAGE = 100
_MAX_CURSOR_CHARS = 200
# What one attached source may hold: enough for any real abstract, and small enough that a
# full session's snapshot fits in one Kafka message.
MAX_ABSTRACT_CHARS = 10_000
MAX_AUTHORS = 50


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.match(session_id):
        raise InvalidInput(
            f"{session_id[:80]!r} is not a research session id; ids look like rs_ followed by "
            "32 hex digits (POST /research/sessions returns one)"
        )
    return session_id


async def session_doc(state: GatewayState, workspace_id: str, session_id: str) -> Document:
    doc = await state.store.research.get_session(workspace_id, check_session_id(session_id))
    if doc is None:
        raise NotFound(
            f"no research session {session_id} in this workspace; GET /research/sessions "
            "lists yours"
        )
    return doc


async def create_session(
    state: GatewayState, workspace_id: str, user_id: str, body: CreateSessionRequest
) -> SessionView:
    doc: Document = {
        "_id": f"rs_{uuid.uuid4().hex}",
        "workspace_id": workspace_id,
        "created_by": user_id,
        "created_at": datetime.now(UTC),
        "title": body.title,
        "query": body.query,
        "providers": [p.value for p in body.providers],
    }
    await state.store.research.insert_session(doc)
    return SessionView(**_summary(doc).model_dump(), sources=[], insights=[])


async def list_sessions(
    state: GatewayState, workspace_id: str, *, limit: int, cursor: str | None
) -> SessionPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE} (got {limit})")
    docs = await state.store.research.list_sessions(
        workspace_id, limit=limit + 1, before=_decode_cursor(cursor) if cursor else None
    )
    page = docs[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(docs) > limit else None
    return SessionPage(sessions=[_summary(d) for d in page], next_cursor=next_cursor)


async def session_view(state: GatewayState, workspace_id: str, session_id: str) -> SessionView:
    doc = await session_doc(state, workspace_id, session_id)
    research = state.store.research
    source_docs = await research.sources(workspace_id, session_id)
    insight_docs = await research.insights(workspace_id, session_id)
    attached = {d["source_id"] for d in source_docs}
    return SessionView(
        **_summary(doc).model_dump(),
        sources=[_attached(d) for d in source_docs],
        insights=[_insight_view(d, attached) for d in insight_docs],
    )


async def delete_session(state: GatewayState, workspace_id: str, session_id: str) -> None:
    await session_doc(state, workspace_id, session_id)
    await state.store.research.delete_session(workspace_id, session_id)


async def attach(
    state: GatewayState,
    workspace_id: str,
    user_id: str,
    session_id: str,
    body: AttachRequest,
) -> AttachResult:
    doc = await session_doc(state, workspace_id, session_id)
    if body.provider.value not in doc["providers"]:
        raise InvalidInput(
            f"this session attaches from {', '.join(doc['providers'])} only, not "
            f"{body.provider.value}; create a session with that provider in `providers`"
        )
    provider = state.research_providers.get(body.provider)
    if provider is None:
        raise HttpProblem(
            503,
            "provider_disabled",
            f"the {body.provider.value} provider is not configured on this gateway",
        )
    try:
        if body.id is not None:
            found = [await provider.get(body.id)]
        else:
            assert body.query is not None
            found = await provider.search(body.query, body.limit)
    except ProviderError as exc:
        raise provider_problem(exc) from exc
    if not found:
        raise NotFound(f"{body.provider.value} found nothing for {body.query!r}; try other words")
    research = state.store.research
    found = [bounded(s) for s in dict((s.source_id, s) for s in found).values()]
    held = {d["source_id"] for d in await research.sources(workspace_id, session_id)}
    new = [s for s in found if s.source_id not in held]
    limit = state.settings.research_max_sources
    if len(held) + len(new) > limit:
        raise Conflict(
            f"the session holds {len(held)} sources and this would add {len(new)}; the "
            f"limit is {limit}: detach some (DELETE /research/sessions/{session_id}/sources/"
            "<source_id>) or attach fewer"
        )
    now = datetime.now(UTC)
    attached: list[AttachedSource] = []
    already: list[str] = []
    for source in found:
        if await research.attach(
            session_id, source, workspace_id=workspace_id, attached_by=user_id, attached_at=now
        ):
            attached.append(
                AttachedSource(
                    source=source,
                    reference=format_reference(source),
                    attached_at=now,
                    attached_by=user_id,
                )
            )
        else:
            already.append(source.source_id)
    return AttachResult(session_id=session_id, attached=attached, already_attached=already)


async def detach(state: GatewayState, workspace_id: str, session_id: str, source_id: str) -> None:
    await session_doc(state, workspace_id, session_id)
    # A malformed id is a 422 that says what ids look like; any spelling of an attached
    # source (DOI case, an arXiv version) detaches it.
    canonical = make_source_id(*parse_source_id(source_id))
    if not await state.store.research.detach(workspace_id, session_id, canonical):
        raise NotFound(
            f"source {source_id!r} is not attached to session {session_id}; GET the session to "
            "see its sources"
        )


async def export_markdown(state: GatewayState, workspace_id: str, session_id: str) -> str:
    doc = await session_doc(state, workspace_id, session_id)
    research = state.store.research
    insight_docs = await research.insights(workspace_id, session_id)
    if not insight_docs:
        raise Conflict(
            f"session {session_id} has no insights yet: POST /research/sessions/{session_id}/"
            "generate-insights, wait for the job, then export"
        )
    sources: dict[str, ResearchSource] = {}
    for d in await research.sources(workspace_id, session_id):
        source = source_of(d)
        sources[source.source_id] = source
    insights: list[Insight] = []
    for d in insight_docs:
        insights.append(insight_of(d))
        for cited in d.get("cited_sources", []):
            snapshot = ResearchSource.model_validate(cited)
            sources.setdefault(snapshot.source_id, snapshot)
    return session_markdown(doc["title"], insights, list(sources.values()))


def bounded(source: ResearchSource) -> ResearchSource:
    """The source as it is kept: its abstract and author list cut to their limits."""
    changes: dict[str, Any] = {}
    if source.abstract and len(source.abstract) > MAX_ABSTRACT_CHARS:
        cut = source.abstract[:MAX_ABSTRACT_CHARS].rsplit(" ", 1)[0]
        changes["abstract"] = cut + " …"
    if len(source.authors) > MAX_AUTHORS:
        changes["authors"] = source.authors[:MAX_AUTHORS]
    return source.model_copy(update=changes) if changes else source


def provider_problem(exc: ProviderError) -> HttpProblem | InvalidInput | NotFound:
    """A provider's failure as the answer to the caller: what failed and what to do."""
    if exc.kind == "not_found":
        return NotFound(exc.message)
    if exc.kind == "invalid_id":
        return InvalidInput(exc.message)
    headers = {"Retry-After": str(max(1, round(exc.retry_after_s or 5)))} if exc.retryable else None
    return HttpProblem(
        exc.http_status, exc.code, exc.message, headers, extra={"provider": exc.provider.value}
    )


# --- views -----------------------------------------------------------------------------------


def _summary(doc: Document) -> SessionSummary:
    return SessionSummary(
        session_id=doc["_id"],
        title=doc["title"],
        query=doc.get("query"),
        providers=[ProviderName(p) for p in doc["providers"]],
        created_at=doc["created_at"],
        created_by=doc["created_by"],
    )


def _attached(doc: Document) -> AttachedSource:
    source = source_of(doc)
    return AttachedSource(
        source=source,
        reference=format_reference(source),
        attached_at=doc["attached_at"],
        attached_by=doc["attached_by"],
    )


def _insight_view(doc: Document, attached: set[str]) -> InsightView:
    insight = insight_of(doc)
    cited = {
        s.source_id: s
        for s in (ResearchSource.model_validate(c) for c in doc.get("cited_sources", []))
    }
    references = [
        CitedReference(
            source_id=source_id,
            reference=format_reference(cited[source_id]) if source_id in cited else source_id,
            attached=source_id in attached,
        )
        for source_id in insight.citations
    ]
    return InsightView(
        job_id=uuid.UUID(doc["job_id"]),
        kind=insight.kind,
        question=insight.question,
        items=insight.items,
        citations=insight.citations,
        references=references,
        flagged_citations=insight.flagged_citations,
        note=insight.note,
        generator=insight.generator or doc["generator"],
        engine=EngineName.EXTRACTIVE
        if insight.generator is InsightGenerator.EXTRACTIVE
        else doc.get("engine"),
        model_id=EXTRACTIVE_MODEL_ID
        if insight.generator is InsightGenerator.EXTRACTIVE
        else doc["model_id"],
        fallback_reason=doc.get("fallback_reason"),
        generated_at=doc["generated_at"],
    )


# --- paging ----------------------------------------------------------------------------------


def _encode_cursor(doc: Document) -> str:
    created_at: datetime = doc["created_at"]
    raw = json.dumps({"t": created_at.isoformat(), "id": doc["_id"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        session_id = check_session_id(str(data["id"]))
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError, InvalidInput) as exc:
        raise InvalidInput(
            "the cursor is not one this API gave out; pass next_cursor from the previous page "
            "unchanged"
        ) from exc
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return created_at, session_id
