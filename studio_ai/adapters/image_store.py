"""Uploaded images in the store: the bytes with their metadata, which jobs use them, and
tombstones of deleted ones.

FerretDB 1.24 makes only unique-key inserts atomic under concurrency (not $inc, not a filtered
update), so a job's use of an image is an insert-only pair: a use document when the job is
accepted and an end document when it finishes, both keyed by image and job. The open uses of
an image are its uses without an end. A deleted image leaves a tombstone, so a caller who asks
for it afterwards learns it is gone and why (410) rather than that it never existed (404).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.domain.images import (
    DELETED_BY_CALLER,
    JOBS_FINISHED,
    NEVER_USED,
    RETENTION_ENDED,
    ImageMeta,
    ImageTombstone,
)

Document = dict[str, Any]

_NO_DATA = {"data": 0}


def _use_key(image_id: str, job_id: str) -> str:
    return f"{image_id}:{job_id}"


class ImageStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.images.create_index([("workspace_id", ASCENDING)])
        await self.db.images.create_index([("consent", ASCENDING), ("expires_at", ASCENDING)])
        await self.db.images.create_index([("consent", ASCENDING), ("created_at", ASCENDING)])
        await self.db.image_uses.create_index([("job_id", ASCENDING)])
        await self.db.image_uses.create_index([("image_id", ASCENDING)])
        await self.db.image_use_ends.create_index([("image_id", ASCENDING)])

    # --- images ---------------------------------------------------------------------------

    async def insert(self, meta: ImageMeta, data: bytes) -> None:
        doc = meta.model_dump(mode="python", exclude={"image_id"})
        await self.db.images.insert_one({"_id": meta.image_id, **doc, "data": Binary(data)})

    async def get_meta(self, workspace_id: str, image_id: str) -> ImageMeta | None:
        """None when the workspace has no such image (another workspace's image included)."""
        doc = await self.db.images.find_one(
            {"_id": image_id, "workspace_id": workspace_id}, _NO_DATA
        )
        return None if doc is None else _to_meta(doc)

    async def get_data(self, workspace_id: str, image_id: str) -> tuple[ImageMeta, bytes] | None:
        doc = await self.db.images.find_one({"_id": image_id, "workspace_id": workspace_id})
        return None if doc is None else (_to_meta(doc), bytes(doc["data"]))

    async def delete(
        self, workspace_id: str, image_id: str, *, now: datetime | None = None
    ) -> bool:
        """Delete a workspace's image, even while jobs use it; False when it has none such."""
        doc = await self.db.images.find_one(
            {"_id": image_id, "workspace_id": workspace_id}, {"_id": 1}
        )
        if doc is None:
            return False
        return await self._remove(image_id, workspace_id, DELETED_BY_CALLER, now, {})

    async def get_tombstone(self, workspace_id: str, image_id: str) -> ImageTombstone | None:
        doc = await self.db.image_tombstones.find_one(
            {"_id": image_id, "workspace_id": workspace_id}
        )
        return None if doc is None else _to_tombstone(doc)

    async def tombstones(self, image_ids: Iterable[str]) -> list[ImageTombstone]:
        """The tombstones of those of the images that were deleted, in any workspace."""
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            return []
        docs = await self.db.image_tombstones.find({"_id": {"$in": ids}}).to_list()
        return [_to_tombstone(doc) for doc in docs]

    async def sweep_audits_pending(self) -> list[ImageTombstone]:
        """Deletions by the sweeper that are not audited yet."""
        docs = await self.db.image_tombstones.find({"sweep_audit_pending": True}).to_list()
        return [_to_tombstone(doc) for doc in docs]

    async def sweep_audited(self, image_ids: Iterable[str]) -> None:
        for image_id in image_ids:
            await self.db.image_tombstones.update_one(
                {"_id": image_id}, {"$unset": {"sweep_audit_pending": ""}}
            )

    async def is_deleted(self, workspace_id: str, image_id: str) -> bool:
        return await self.get_tombstone(workspace_id, image_id) is not None

    # --- uses by jobs ---------------------------------------------------------------------

    async def record_use(
        self, image_id: str, job_id: str, *, workspace_id: str | None = None
    ) -> bool:
        """Record that a job uses an image; idempotent. False when the image is gone by now.

        Record the use before the job is published: an image deleted between the caller's
        lookup and this call is then caught here, not by the worker.
        """
        with contextlib.suppress(DuplicateKeyError):
            await self.db.image_uses.insert_one(
                {
                    "_id": _use_key(image_id, job_id),
                    "image_id": image_id,
                    "job_id": job_id,
                    "workspace_id": workspace_id,
                    "recorded_at": datetime.now(UTC),
                }
            )
        return await self.db.images.find_one({"_id": image_id}, {"_id": 1}) is not None

    async def end_use(self, job_id: str, image_ids: Iterable[str] = ()) -> None:
        """A job finished (completed, failed or cancelled): end its uses; idempotent.

        `image_ids` (the job's images) also ends uses that are recorded only later, so a use
        recorded after its job already ended does not keep an image forever.
        """
        ids = set(image_ids)
        ids.update([doc["image_id"] async for doc in self.db.image_uses.find({"job_id": job_id})])
        for image_id in sorted(ids):
            with contextlib.suppress(DuplicateKeyError):
                await self.db.image_use_ends.insert_one(
                    {
                        "_id": _use_key(image_id, job_id),
                        "image_id": image_id,
                        "job_id": job_id,
                        "ended_at": datetime.now(UTC),
                    }
                )

    async def open_uses(self, image_id: str) -> set[str]:
        """Ids of the jobs that use the image and have not finished."""
        return (await self._uses(image_id))[1]

    async def release_unconsented(
        self, image_ids: Iterable[str], *, now: datetime | None = None
    ) -> list[str]:
        """Delete those of the images that were uploaded without consent and that no
        unfinished job uses; returns the ids deleted. Call it after `end_use`."""
        deleted = []
        for image_id in dict.fromkeys(image_ids):
            doc = await self.db.images.find_one({"_id": image_id, "consent": False}, _NO_DATA)
            if doc is None:
                continue
            _, still_open = await self._uses(image_id)
            if not still_open and await self._remove(
                image_id, doc["workspace_id"], JOBS_FINISHED, now, {"consent": False}
            ):
                deleted.append(image_id)
        return deleted

    # --- retention ------------------------------------------------------------------------

    async def sweep_expired(
        self, now: datetime, *, unused_before: datetime | None = None
    ) -> list[str]:
        """Delete consented images whose retention ended by `now`, and, with `unused_before`,
        images without consent uploaded before it that no unfinished job uses (never used, or
        their release was missed). Returns the ids deleted."""
        deleted = []
        expired = {"consent": True, "expires_at": {"$lte": now}}
        for doc in await self.db.images.find(expired, {"workspace_id": 1}).to_list():
            if await self._remove(
                doc["_id"], doc["workspace_id"], RETENTION_ENDED, now, expired, swept=True
            ):
                deleted.append(doc["_id"])
        if unused_before is not None:
            stale = {"consent": False, "created_at": {"$lte": unused_before}}
            for doc in await self.db.images.find(stale, {"workspace_id": 1}).to_list():
                uses, still_open = await self._uses(doc["_id"])
                reason = JOBS_FINISHED if uses else NEVER_USED
                if not still_open and await self._remove(
                    doc["_id"], doc["workspace_id"], reason, now, stale, swept=True
                ):
                    deleted.append(doc["_id"])
        return deleted

    # --- internals ------------------------------------------------------------------------

    async def _uses(self, image_id: str) -> tuple[set[str], set[str]]:
        """(all jobs that used the image, those not finished)."""
        # Ends are read before uses: a use recorded meanwhile then counts as open (the image is
        # kept), never the other way round.
        ended = {doc["job_id"] async for doc in self.db.image_use_ends.find({"image_id": image_id})}
        used = {doc["job_id"] async for doc in self.db.image_uses.find({"image_id": image_id})}
        return used, used - ended

    async def _remove(
        self,
        image_id: str,
        workspace_id: str,
        reason: str,
        now: datetime | None,
        condition: Document,
        *,
        swept: bool = False,
    ) -> bool:
        # The tombstone comes first, so a reader finds either the image or its tombstone.
        tombstone = {
            "_id": image_id,
            "workspace_id": workspace_id,
            "deleted_at": now or datetime.now(UTC),
            "reason": reason,
        }
        if swept:
            # The sweeper audits its deletions after making them; until it has, the tombstone
            # says so, and a sweep that died in between is finished by the next one.
            tombstone["sweep_audit_pending"] = True
        with contextlib.suppress(DuplicateKeyError):
            await self.db.image_tombstones.insert_one(tombstone)
        result = await self.db.images.delete_one(
            {"_id": image_id, "workspace_id": workspace_id, **condition}
        )
        if result.deleted_count == 1:
            await self.db.image_uses.delete_many({"image_id": image_id})
            await self.db.image_use_ends.delete_many({"image_id": image_id})
        return result.deleted_count == 1


def _to_tombstone(doc: Document) -> ImageTombstone:
    return ImageTombstone(
        image_id=doc["_id"],
        workspace_id=doc["workspace_id"],
        deleted_at=doc["deleted_at"],
        reason=doc["reason"],
    )


def _to_meta(doc: Document) -> ImageMeta:
    doc = dict(doc)
    doc.pop("data", None)
    return ImageMeta.model_validate({**doc, "image_id": doc.pop("_id")})
