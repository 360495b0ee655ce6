"""/research/sessions: research sessions a person builds while preparing a deck: attach
sources from Crossref, arXiv or the offline fixture provider, generate cited insights through
the event pipeline, and export them as slide-ready markdown."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from studio_ai.producers import insight_admission, research_sessions
from studio_ai.producers.gateway.context import AnyCaller, State
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.research_api import (
    AttachRequest,
    AttachResult,
    CreateSessionRequest,
    GenerateInsightsRequest,
    InsightsAccepted,
    SessionPage,
    SessionView,
)

router = APIRouter(prefix="/research/sessions", tags=["research"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    404: {"model": ErrorBody, "description": "No such session (in this workspace) or source."},
    409: {"model": ErrorBody, "description": "No sources yet, no insights yet, or too many."},
    422: {"model": ErrorBody, "description": "Invalid input; the detail says what to change."},
    502: {"model": ErrorBody, "description": "The provider answered something unreadable."},
    503: {
        "model": ErrorBody,
        "description": "A provider is down or rate-limits us, or the broker is not answering; "
        "Retry-After says when to try again.",
    },
}


@router.post("", response_model=SessionView, status_code=201, responses=ERRORS)
async def create_session(
    body: CreateSessionRequest, state: State, caller: AnyCaller
) -> SessionView:
    """Start a research session for a deck."""
    return await research_sessions.create_session(state, caller.workspace_id, caller.user_id, body)


@router.get("", response_model=SessionPage, responses=ERRORS)
async def list_sessions(
    state: State,
    caller: AnyCaller,
    limit: Annotated[int, Query(ge=1, le=research_sessions.MAX_PAGE)] = 20,
    cursor: str | None = None,
) -> SessionPage:
    """The workspace's sessions, newest first; pass `next_cursor` as `cursor` for more."""
    return await research_sessions.list_sessions(
        state, caller.workspace_id, limit=limit, cursor=cursor
    )


@router.get("/{session_id}", response_model=SessionView, responses=ERRORS)
async def get_session(session_id: str, state: State, caller: AnyCaller) -> SessionView:
    """The session with its sources (and formatted references) and its insights with their
    citations."""
    return await research_sessions.session_view(state, caller.workspace_id, session_id)


@router.delete("/{session_id}", status_code=204, responses=ERRORS)
async def delete_session(session_id: str, state: State, caller: AnyCaller) -> Response:
    """Delete the session, its sources and its insights."""
    await research_sessions.delete_session(state, caller.workspace_id, session_id)
    return Response(status_code=204)


@router.post("/{session_id}/attach", response_model=AttachResult, responses=ERRORS)
async def attach(
    session_id: str, body: AttachRequest, state: State, caller: AnyCaller
) -> AttachResult:
    """Attach one work by id (`{provider, id}`) or the top results of a search (`{provider,
    query, limit}`). A source attached twice is one source."""
    return await research_sessions.attach(
        state, caller.workspace_id, caller.user_id, session_id, body
    )


@router.delete("/{session_id}/sources/{source_id:path}", status_code=204, responses=ERRORS)
async def detach(session_id: str, source_id: str, state: State, caller: AnyCaller) -> Response:
    """Detach a source (`crossref:<doi>`, `arxiv:<id>`, `fixture:<id>`). Insights that cite it
    keep their references."""
    await research_sessions.detach(state, caller.workspace_id, session_id, source_id)
    return Response(status_code=204)


@router.post(
    "/{session_id}/generate-insights",
    response_model=InsightsAccepted,
    status_code=202,
    responses={
        **ERRORS,
        403: {"model": ErrorBody, "description": "The plan does not include the task."},
        429: {"model": ErrorBody, "description": "A quota is used up; Retry-After says when."},
    },
)
async def generate_insights(
    session_id: str,
    body: GenerateInsightsRequest,
    request: Request,
    state: State,
    caller: AnyCaller,
) -> InsightsAccepted:
    """Queue an insights job (summary, bullets, outline, references, qa) on the attached
    sources; follow it at /ai/jobs/{job_id}; its insights appear on the session."""
    return await insight_admission.submit_insights(
        state, caller, session_id, body, request.state.correlation_id
    )


@router.get(
    "/{session_id}/export",
    response_class=PlainTextResponse,
    responses={**ERRORS, 200: {"content": {"text/markdown": {}}}},
)
async def export(
    session_id: str,
    state: State,
    caller: AnyCaller,
    format: Literal["markdown"] = "markdown",
) -> PlainTextResponse:
    """Slide-ready bullets with numbered citations and a references list."""
    text = await research_sessions.export_markdown(state, caller.workspace_id, session_id)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
