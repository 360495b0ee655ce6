"""/admin/audit: the caller's workspace's audit log, newest first, filtered and paginated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from studio_ai.domain.audit_query import DEFAULT_PAGE, MAX_PAGE, audit_query
from studio_ai.producers.gateway.context import AdminCaller, State
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.audit import AuditAction, AuditRecorded

router = APIRouter(prefix="/admin/audit", tags=["admin: audit"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    403: {"model": ErrorBody, "description": "The key is not an admin key."},
    422: {"model": ErrorBody, "description": "Invalid filter or cursor; the detail says which."},
}


class AuditPage(BaseModel):
    records: list[AuditRecorded] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


@router.get("", response_model=AuditPage, responses=ERRORS)
async def list_audit_records(
    state: State,
    caller: AdminCaller,
    user_id: Annotated[str | None, Query(max_length=200, description="Who acted.")] = None,
    action: Annotated[
        str | None,
        Query(description="One of: " + ", ".join(a.value for a in AuditAction) + "."),
    ] = None,
    model_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; records created at or after it.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601; records created before it.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Records per page.")] = (
        DEFAULT_PAGE
    ),
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page.")
    ] = None,
) -> AuditPage:
    """Who did what to which model and inputs in this workspace (refs and sha256 hashes only,
    never content)."""
    query = audit_query(
        caller.workspace_id,
        user_id=user_id,
        action=action,
        model_id=model_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    records, next_cursor = await state.store.audit.query(query)
    return AuditPage(records=records, next_cursor=next_cursor)
