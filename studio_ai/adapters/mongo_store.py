"""MongoDB store (pymongo's async client) for keys, workspace catalog entries and projections.

Only single-document atomic operations and unique indexes are used, so the same code runs on
MongoDB and on FerretDB (see DESIGN.md, delivery rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.adapters.audit_store import AuditStore
from studio_ai.adapters.image_store import ImageStore
from studio_ai.adapters.job_store import JobStore
from studio_ai.adapters.plan_store import PlanStore
from studio_ai.adapters.quota_ledger import QuotaLedger
from studio_ai.adapters.receipt_store import ReceiptStore
from studio_ai.adapters.research_store import ResearchStore
from studio_ai.domain.model_installation import ModelInstallation
from studio_ai.runtime.delivery import TransientError
from studio_ai.schemas.models import CatalogEntry

log = logging.getLogger(__name__)

Document = dict[str, Any]


class StoreConflict(TransientError):
    """Another writer kept changing the same document; the caller may retry later."""


def _installation_key(workspace_id: str, model_id: str) -> str:
    return f"{workspace_id}:{model_id}"


class MongoStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._client = client
        self.db: AsyncDatabase[Document] = client[database]
        # FerretDB 1.24 does not make a filtered update atomic (two concurrent compare-and-set
        # writes can both match), so writers of one document in this process take turns.
        # MongoDB needs no help: there the version filter alone is enough across processes.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.jobs = JobStore(self.db)
        self.images = ImageStore(self.db)
        self.audit = AuditStore(self.db)
        self.receipts = ReceiptStore(self.db)
        self.plans = PlanStore(self.db)
        self.quotas = QuotaLedger(self.db)
        self.research = ResearchStore(self.db)

    @classmethod
    def connect(cls, url: str, database: str, *, timeout_ms: int = 5000) -> MongoStore:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            tz_aware=True,
            uuidRepresentation="standard",
            serverSelectionTimeoutMS=timeout_ms,
            appname="studio-ai",
        )
        return cls(client, database)

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        await self.db.api_keys.create_index([("key_hash", ASCENDING)], unique=True)
        await self.db.api_keys.create_index([("workspace_id", ASCENDING)])
        await self.db.catalog_entries.create_index([("workspace_id", ASCENDING)])
        await self.db.download_cancellations.create_index([("workspace_id", ASCENDING)])
        await self.db.model_installations.create_index(
            [("workspace_id", ASCENDING), ("model_id", ASCENDING)], unique=True
        )
        await self.jobs.ensure_indexes()
        await self.images.ensure_indexes()
        await self.audit.ensure_indexes()
        await self.receipts.ensure_indexes()
        await self.quotas.ensure_indexes()
        await self.research.ensure_indexes()

    # --- API keys -------------------------------------------------------------------------

    async def insert_api_key(self, document: Document) -> None:
        await self.db.api_keys.insert_one(document)

    async def find_api_key(self, key_hash: str) -> Document | None:
        return await self.db.api_keys.find_one({"key_hash": key_hash, "revoked": False})

    async def insert_catalog_entry(
        self, workspace_id: str, entry: CatalogEntry, *, created_by: str, created_at: datetime
    ) -> bool:
        """False when the model id is already taken (model ids are unique across workspaces)."""
        try:
            await self.db.catalog_entries.insert_one(
                {
                    "_id": entry.model_id,
                    "workspace_id": workspace_id,
                    "entry": entry.model_dump(mode="json"),
                    "created_by": created_by,
                    "created_at": created_at,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def list_catalog_entries(self, workspace_id: str) -> list[CatalogEntry]:
        cursor = self.db.catalog_entries.find({"workspace_id": workspace_id}).sort("_id", ASCENDING)
        return [CatalogEntry.model_validate(doc["entry"]) async for doc in cursor]

    # --- download cancellations (insert-only, one per download) -----------------------------

    async def insert_cancellation(
        self,
        download_id: uuid.UUID,
        *,
        workspace_id: str,
        model_id: str,
        requested_by: str,
        requested_at: datetime,
    ) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db.download_cancellations.insert_one(
                {
                    "_id": str(download_id),
                    "workspace_id": workspace_id,
                    "model_id": model_id,
                    "requested_by": requested_by,
                    "requested_at": requested_at,
                }
            )

    async def is_cancelled(self, download_id: uuid.UUID) -> bool:
        return await self.db.download_cancellations.find_one({"_id": str(download_id)}) is not None

    async def cancelled_downloads(self, workspace_id: str) -> set[str]:
        cursor = self.db.download_cancellations.find({"workspace_id": workspace_id}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    # --- model installations (the model projection) ---------------------------------------

    async def get_installation(self, workspace_id: str, model_id: str) -> ModelInstallation | None:
        doc = await self.db.model_installations.find_one(
            {"_id": _installation_key(workspace_id, model_id)}
        )
        return None if doc is None else _to_installation(doc)

    async def list_installations(self, workspace_id: str) -> dict[str, ModelInstallation]:
        cursor = self.db.model_installations.find({"workspace_id": workspace_id})
        return {doc["model_id"]: _to_installation(doc) async for doc in cursor}

    async def installations_in_pool(self, pool: str) -> list[ModelInstallation]:
        """Installed models (any workspace) whose runtime puts them in `pool`."""
        cursor = self.db.model_installations.find({"runtime.pool": pool, "status": "installed"})
        return [_to_installation(doc) async for doc in cursor]

    async def update_installation(
        self,
        workspace_id: str,
        model_id: str,
        change: Callable[[ModelInstallation | None], ModelInstallation | None],
        *,
        attempts: int = 20,
    ) -> ModelInstallation | None:
        """Apply a pure state change with compare-and-set on `version`.

        Returns the stored new state, or None when `change` decided nothing changes. Domain
        errors raised by `change` propagate unchanged.
        """
        key = _installation_key(workspace_id, model_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._compare_and_set(key, workspace_id, model_id, change, attempts)

    async def _compare_and_set(
        self,
        key: str,
        workspace_id: str,
        model_id: str,
        change: Callable[[ModelInstallation | None], ModelInstallation | None],
        attempts: int,
    ) -> ModelInstallation | None:
        for attempt in range(attempts):
            current = await self.get_installation(workspace_id, model_id)
            new = change(current)
            if new is None:
                return None
            doc = {"_id": key, **new.model_dump(mode="python")}
            if current is None:
                try:
                    await self.db.model_installations.insert_one(doc)
                    return new
                except DuplicateKeyError:
                    pass
            else:
                result = await self.db.model_installations.replace_one(
                    {"_id": key, "version": current.version}, doc
                )
                if result.matched_count == 1:
                    return new
            await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
        raise StoreConflict(f"model installation {key} kept changing; try again")


def _to_installation(doc: Document) -> ModelInstallation:
    doc = dict(doc)
    doc.pop("_id", None)
    return ModelInstallation.model_validate(doc)
