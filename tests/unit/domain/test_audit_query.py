"""Audit log queries: checked filters, and a cursor that round-trips and refuses forgeries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from studio_ai.adapters.audit_store import audit_filter
from studio_ai.domain.audit_query import (
    MAX_PAGE,
    PagePosition,
    audit_query,
    decode_cursor,
    encode_cursor,
)
from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.audit import AuditAction

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_cursor_round_trips() -> None:
    position = PagePosition(created_at=T0, audit_id="0b5d3f4e-39c1-4c55-9a57-5f3a0d0c2b61")
    cursor = encode_cursor(position)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == position


@pytest.mark.parametrize("cursor", ["", "not base64!", "bm90IGpzb24", "W10", "eyJ0IjogMX0"])
def test_a_cursor_this_api_did_not_make_is_refused_with_the_fix(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="pass the previous page's next_cursor unchanged"):
        decode_cursor(cursor)


def test_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        audit_query("ws", action="image.stolen")
    for action in AuditAction:
        assert action.value in caught.value.message


@pytest.mark.parametrize("limit", [0, MAX_PAGE + 1])
def test_limit_is_bounded(limit: int) -> None:
    with pytest.raises(InvalidInput, match=f"between 1 and {MAX_PAGE}"):
        audit_query("ws", limit=limit)


def test_window_must_be_in_order_and_naive_times_are_utc() -> None:
    with pytest.raises(InvalidInput, match="must be before until"):
        audit_query("ws", since=T0, until=T0)
    query = audit_query(
        "ws",
        since=datetime(2025, 3, 1, 12, 0),
        until=datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    assert query.since == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert query.until == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)


def test_filter_is_always_scoped_to_the_workspace() -> None:
    assert audit_filter(audit_query("ws-a")) == {"workspace_id": "ws-a"}
    cursor = encode_cursor(PagePosition(created_at=T0, audit_id="b"))
    query = audit_query(
        "ws-a",
        user_id="alice",
        action="image.deleted",
        model_id="m/x",
        since=T0 - timedelta(days=1),
        until=T0 + timedelta(days=1),
        cursor=cursor,
    )
    assert audit_filter(query) == {
        "workspace_id": "ws-a",
        "user_id": "alice",
        "action": "image.deleted",
        "model_id": "m/x",
        "created_at": {"$gte": T0 - timedelta(days=1), "$lt": T0 + timedelta(days=1)},
        "$or": [{"created_at": {"$lt": T0}}, {"created_at": T0, "_id": {"$lt": "b"}}],
    }
