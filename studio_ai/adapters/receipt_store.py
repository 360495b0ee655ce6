"""Signed receipts in the store: insert-only, one document per receipt id.

The receipt is stored as the exact JSON it was signed and served as (times stay strings: a
BSON date keeps only milliseconds and would no longer match the signature). FerretDB 1.24
makes only unique inserts atomic, so two concurrent requests for the same receipt both insert
and the loser reads the winner's back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]


class ReceiptStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.receipts.create_index([("workspace_id", ASCENDING), ("job_id", ASCENDING)])

    async def insert_or_get(
        self, receipt: Document, *, stored_at: datetime
    ) -> tuple[Document, bool]:
        """(the stored receipt, True) when this insert made it; (the one already stored under
        its id, False) otherwise."""
        receipt_id = receipt["receipt_id"]
        try:
            await self.db.receipts.insert_one(
                {
                    "_id": receipt_id,
                    "workspace_id": receipt["workspace_id"],
                    "job_id": receipt["job_id"],
                    "stored_at": stored_at,
                    "receipt": receipt,
                }
            )
        except DuplicateKeyError:
            stored = await self.get(receipt["workspace_id"], receipt_id)
            if stored is None:  # cannot happen: the id derives from a job of one workspace
                raise
            return stored, False
        return receipt, True

    async def get(self, workspace_id: str, receipt_id: str) -> Document | None:
        """The receipt as signed, or None when the workspace has none such."""
        doc = await self.db.receipts.find_one({"_id": receipt_id, "workspace_id": workspace_id})
        return None if doc is None else dict(doc["receipt"])
