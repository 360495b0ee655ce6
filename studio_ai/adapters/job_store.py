"""Inference jobs in the store: the job projection, cancellations, worker outcomes, worker
heartbeats, per-job metrics and the workspaces' default models.

Like the rest of the store, only single-document operations and unique keys are used. The job
projection changes by compare-and-set on `version`; everything a worker must decide exactly
once (a job's outcome, a cancellation, a metrics record) is an insert on a unique key.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.domain.inference_job import InferenceJob
from studio_ai.runtime.delivery import TransientError
from studio_ai.schemas.inference import InferenceMetrics
from studio_ai.schemas.models import ModelTask

Document = dict[str, Any]


class JobConflict(TransientError):
    """Another writer kept changing the same job; the caller may retry later."""


class JobStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        # FerretDB 1.24 does not make a filtered update atomic, so writers of one job in this
        # process take turns (see MongoStore.update_installation).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def ensure_indexes(self) -> None:
        await self.db.inference_jobs.create_index(
            [("workspace_id", ASCENDING), ("timings.queued_at", DESCENDING)]
        )
        await self.db.inference_metrics.create_index(
            [("workspace_id", ASCENDING), ("finished_at", ASCENDING)]
        )
        await self.db.worker_heartbeats.create_index([("pool", ASCENDING)])

    # --- the job projection ---------------------------------------------------------------

    async def insert_job(self, job: InferenceJob) -> bool:
        """False when the job exists already (a replayed request)."""
        try:
            await self.db.inference_jobs.insert_one(_job_doc(job))
        except DuplicateKeyError:
            return False
        return True

    async def get_job(
        self, job_id: uuid.UUID, workspace_id: str | None = None
    ) -> InferenceJob | None:
        """The job, or None; with `workspace_id`, only a job of that workspace."""
        query: Document = {"_id": str(job_id)}
        if workspace_id is not None:
            query["workspace_id"] = workspace_id
        doc = await self.db.inference_jobs.find_one(query)
        return None if doc is None else _to_job(doc)

    async def list_jobs(self, workspace_id: str, *, limit: int = 50) -> list[InferenceJob]:
        cursor = (
            self.db.inference_jobs.find({"workspace_id": workspace_id})
            .sort("timings.queued_at", DESCENDING)
            .limit(limit)
        )
        return [_to_job(doc) async for doc in cursor]

    async def update_job(
        self,
        job_id: uuid.UUID,
        change: Callable[[InferenceJob | None], InferenceJob | None],
        *,
        attempts: int = 20,
    ) -> InferenceJob | None:
        """Apply a pure change with compare-and-set on `version`; None: nothing changed."""
        key = str(job_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            for attempt in range(attempts):
                current = await self.get_job(job_id)
                new = change(current)
                if new is None:
                    return None
                if current is None:
                    if await self.insert_job(new):
                        return new
                else:
                    result = await self.db.inference_jobs.replace_one(
                        {"_id": key, "version": current.version}, _job_doc(new)
                    )
                    if result.matched_count == 1:
                        return new
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
        raise JobConflict(f"job {job_id} kept changing; try again")

    # --- cancellations (insert-only) ------------------------------------------------------

    async def insert_cancellation(
        self, job_id: uuid.UUID, *, workspace_id: str, requested_by: str, requested_at: datetime
    ) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db.job_cancellations.insert_one(
                {
                    "_id": str(job_id),
                    "workspace_id": workspace_id,
                    "requested_by": requested_by,
                    "requested_at": requested_at,
                }
            )

    async def get_cancellation(self, job_id: uuid.UUID) -> Document | None:
        return await self.db.job_cancellations.find_one({"_id": str(job_id)})

    async def cancelled_among(self, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        if not job_ids:
            return set()
        cursor = self.db.job_cancellations.find(
            {"_id": {"$in": [str(j) for j in job_ids]}}, {"_id": 1}
        )
        return {uuid.UUID(doc["_id"]) async for doc in cursor}

    # --- worker outcomes (insert-only: a job ends once, whatever is redelivered) ----------

    async def claim_outcome(self, job_id: uuid.UUID, outcome: Document) -> Document:
        """Record `outcome` as the job's one outcome; return the one that is recorded (this
        one, or an earlier one when the job was already finished by an earlier delivery)."""
        doc = {"_id": str(job_id), **outcome}
        try:
            await self.db.job_outcomes.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db.job_outcomes.find_one({"_id": str(job_id)})
            if existing is not None:
                return existing
            raise
        return doc

    async def get_outcome(self, job_id: uuid.UUID) -> Document | None:
        return await self.db.job_outcomes.find_one({"_id": str(job_id)})

    # --- worker heartbeats (one document per worker, written only by that worker) ---------

    async def heartbeat(self, worker_id: str, pool: str, *, at: datetime, in_flight: int) -> None:
        await self.db.worker_heartbeats.replace_one(
            {"_id": worker_id},
            {"_id": worker_id, "pool": pool, "seen_at": at, "in_flight": in_flight},
            upsert=True,
        )

    async def remove_heartbeat(self, worker_id: str) -> None:
        await self.db.worker_heartbeats.delete_one({"_id": worker_id})

    async def live_pools(self, since: datetime) -> set[str]:
        cursor = self.db.worker_heartbeats.find({"seen_at": {"$gte": since}}, {"pool": 1})
        return {doc["pool"] async for doc in cursor}

    # --- per-job metrics (insert-only, keyed by event id) ----------------------------------

    async def insert_metrics(self, event_id: uuid.UUID, record: InferenceMetrics) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db.inference_metrics.insert_one(
                {"_id": str(event_id), **record.model_dump(mode="python")}
                | {"job_id": str(record.job_id)}
            )

    async def metrics_since(self, workspace_id: str, since: datetime) -> list[InferenceMetrics]:
        cursor = self.db.inference_metrics.find(
            {"workspace_id": workspace_id, "finished_at": {"$gte": since}}
        )
        return [InferenceMetrics.model_validate(_without_id(doc)) async for doc in cursor]

    # --- workspace default models ---------------------------------------------------------

    async def set_default_model(self, workspace_id: str, task: ModelTask, model_id: str) -> None:
        key = f"{workspace_id}:{task.value}"
        await self.db.workspace_defaults.replace_one(
            {"_id": key},
            {"_id": key, "workspace_id": workspace_id, "task": task.value, "model_id": model_id},
            upsert=True,
        )

    async def default_models(self, workspace_id: str) -> dict[ModelTask, str]:
        cursor = self.db.workspace_defaults.find({"workspace_id": workspace_id})
        return {ModelTask(doc["task"]): doc["model_id"] async for doc in cursor}

    # --- notes: text a job may read through note:<id> ----------------------------------------

    async def insert_note(
        self, note_id: str, *, workspace_id: str, user_id: str, title: str, text: str, at: datetime
    ) -> None:
        await self.db.notes.insert_one(
            {
                "_id": note_id,
                "workspace_id": workspace_id,
                "user_id": user_id,
                "title": title,
                "text": text,
                "created_at": at,
            }
        )

    async def get_note(self, workspace_id: str, note_id: str) -> Document | None:
        return await self.db.notes.find_one({"_id": note_id, "workspace_id": workspace_id})


def _job_doc(job: InferenceJob) -> Document:
    return {"_id": str(job.job_id), **job.model_dump(mode="python")} | {"job_id": str(job.job_id)}


def _without_id(doc: Document) -> Document:
    doc = dict(doc)
    doc.pop("_id", None)
    return doc


def _to_job(doc: Document) -> InferenceJob:
    return InferenceJob.model_validate(_without_id(doc))
