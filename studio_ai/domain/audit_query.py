"""Reading the audit log: what a query may ask for, and the opaque cursor that pages through
the answer newest first (by created_at, then audit id).

Pure: the store turns an `AuditQuery` into its own filter.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.audit import AuditAction

MAX_PAGE = 500
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class PagePosition:
    """The last record of a page: the next page starts just after (older than) it."""

    created_at: datetime
    audit_id: str


@dataclass(frozen=True)
class AuditQuery:
    """One workspace's records, optionally only one user's, action's or model's, created in
    [since, until)."""

    workspace_id: str
    user_id: str | None = None
    action: AuditAction | None = None
    model_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_PAGE
    after: PagePosition | None = None


def audit_query(
    workspace_id: str,
    *,
    user_id: str | None = None,
    action: str | None = None,
    model_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> AuditQuery:
    """A checked query; InvalidInput says which part to change."""
    since, until = as_utc(since), as_utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE} (got {limit})")
    return AuditQuery(
        workspace_id=workspace_id,
        user_id=user_id or None,
        action=parse_action(action) if action else None,
        model_id=model_id or None,
        since=since,
        until=until,
        limit=limit,
        after=decode_cursor(cursor) if cursor else None,
    )


def parse_action(value: str) -> AuditAction:
    try:
        return AuditAction(value)
    except ValueError:
        known = ", ".join(a.value for a in AuditAction)
        raise InvalidInput(
            f"action {value!r} is not an audited action; use one of: {known}"
        ) from None


def as_utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def encode_cursor(position: PagePosition) -> str:
    raw = json.dumps({"t": position.created_at.isoformat(), "id": position.audit_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> PagePosition:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = as_utc(datetime.fromisoformat(raw["t"]))
        audit_id = raw["id"]
        if moment is None or not isinstance(audit_id, str):
            raise ValueError(audit_id)
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        raise InvalidInput(
            "cursor is not one this API returned: pass the previous page's next_cursor "
            "unchanged, or leave it out for the first page"
        ) from None
    return PagePosition(created_at=moment, audit_id=audit_id)
