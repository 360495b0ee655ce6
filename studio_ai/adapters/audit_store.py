"""The audit log in the store: append-only, one document per audit id.

A record is only ever inserted, keyed by its audit id, so a republished or replayed record is
kept once (a unique insert is atomic on FerretDB 1.24 too). Nothing updates or deletes one.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.domain.audit_query import AuditQuery, PagePosition, encode_cursor
from studio_ai.schemas.audit import AuditRecorded

Document = dict[str, Any]


class AuditStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.audit_records.create_index(
            [("workspace_id", ASCENDING), ("created_at", DESCENDING)]
        )

    async def insert(self, record: AuditRecorded) -> bool:
        """Keep a record; False when one with its audit id is kept already."""
        doc = record.model_dump(mode="json")
        # A datetime, not the JSON string: time filters and the sort compare dates.
        doc["created_at"] = record.created_at
        try:
            await self.db.audit_records.insert_one({"_id": doc.pop("audit_id"), **doc})
        except DuplicateKeyError:
            return False
        return True

    async def query(self, query: AuditQuery) -> tuple[list[AuditRecorded], str | None]:
        """A page of the workspace's records, newest first, and the cursor of the next page
        (None on the last one)."""
        cursor = (
            self.db.audit_records.find(audit_filter(query))
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(query.limit + 1)
        )
        docs = await cursor.to_list()
        page = docs[: query.limit]
        next_cursor = None
        if len(docs) > query.limit:
            last = page[-1]
            next_cursor = encode_cursor(
                PagePosition(created_at=last["created_at"], audit_id=last["_id"])
            )
        return [_to_record(doc) for doc in page], next_cursor


def audit_filter(query: AuditQuery) -> Document:
    """The store filter of a query: always one workspace's records."""
    found: Document = {"workspace_id": query.workspace_id}
    if query.user_id is not None:
        found["user_id"] = query.user_id
    if query.action is not None:
        found["action"] = query.action.value
    if query.model_id is not None:
        found["model_id"] = query.model_id
    window: Document = {}
    if query.since is not None:
        window["$gte"] = query.since
    if query.until is not None:
        window["$lt"] = query.until
    if window:
        found["created_at"] = window
    if query.after is not None:
        after = query.after
        found["$or"] = [
            {"created_at": {"$lt": after.created_at}},
            {"created_at": after.created_at, "_id": {"$lt": after.audit_id}},
        ]
    return found


def _to_record(doc: Document) -> AuditRecorded:
    doc = dict(doc)
    return AuditRecorded.model_validate({**doc, "audit_id": doc.pop("_id")})
