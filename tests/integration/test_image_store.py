"""The image store against the real MongoDB-wire server that `make test` starts.

FerretDB 1.24 makes only unique-key inserts atomic, so uses are insert-only pairs (use, end);
these tests check that many jobs starting and finishing at once never delete an image that an
unfinished job uses, and always delete an unconsented one once all its jobs are done.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from studio_ai.adapters.image_store import ImageStore
from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.images import (
    DELETED_BY_CALLER,
    JOBS_FINISHED,
    NEVER_USED,
    RETENTION_ENDED,
    ImageMeta,
    new_image_meta,
    sniff_image,
)
from tests.support.stack import mongo_url

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def png(size: tuple[int, int] = (16, 16)) -> bytes:
    """A PNG of random pixels: they do not compress, so its size follows its pixel count."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def images() -> AsyncIterator[ImageStore]:
    store = MongoStore.connect(mongo_url(), f"images_{uuid.uuid4().hex[:10]}")
    try:
        image_store = ImageStore(store.db)
        await image_store.ensure_indexes()
        yield image_store
        await store.db.client.drop_database(store.db.name)
    finally:
        await store.close()


async def upload(
    store: ImageStore,
    workspace_id: str = "ws-a",
    *,
    consent: bool = False,
    retention_days: int | None = None,
    created_at: datetime = NOW,
    data: bytes | None = None,
) -> ImageMeta:
    data = data or png()
    media_type, width, height = sniff_image(data, max_bytes=8 * 1024 * 1024)
    meta = new_image_meta(
        workspace_id=workspace_id,
        user_id="u-1",
        data=data,
        media_type=media_type,
        width=width,
        height=height,
        consent=consent,
        retention_days=retention_days,
        created_at=created_at,
    )
    await store.insert(meta, data)
    return meta


async def test_images_are_read_back_only_in_their_workspace(images: ImageStore) -> None:
    data = png((20, 10))
    meta = await upload(images, consent=True, retention_days=30, data=data)

    assert await images.get_meta("ws-a", meta.image_id) == meta
    found = await images.get_data("ws-a", meta.image_id)
    assert found == (meta, data)

    assert await images.get_meta("ws-b", meta.image_id) is None
    assert await images.get_data("ws-b", meta.image_id) is None
    assert not await images.delete("ws-b", meta.image_id)
    assert not await images.is_deleted("ws-b", meta.image_id)
    assert await images.get_meta("ws-a", f"img_{uuid.uuid4().hex}") is None


async def test_the_largest_accepted_image_is_stored_whole(images: ImageStore) -> None:
    data = png((1665, 1665))
    assert 8_000_000 < len(data) <= 8 * 1024 * 1024
    meta = await upload(images, consent=True, retention_days=1, data=data)
    found = await images.get_data("ws-a", meta.image_id)
    assert found is not None and found[1] == data


async def test_delete_leaves_a_tombstone_in_the_workspace_only(images: ImageStore) -> None:
    meta = await upload(images, consent=True, retention_days=30)
    assert await images.delete("ws-a", meta.image_id, now=NOW)
    assert await images.get_meta("ws-a", meta.image_id) is None
    tombstone = await images.get_tombstone("ws-a", meta.image_id)
    assert tombstone is not None
    assert (tombstone.reason, tombstone.deleted_at) == (DELETED_BY_CALLER, NOW)
    assert await images.is_deleted("ws-a", meta.image_id)
    assert not await images.is_deleted("ws-b", meta.image_id)
    assert not await images.delete("ws-a", meta.image_id)  # already gone


async def test_unconsented_image_goes_when_its_last_job_ends(images: ImageStore) -> None:
    transient = await upload(images)
    kept = await upload(images, consent=True, retention_days=30)
    for job in ("job-1", "job-2"):
        assert await images.record_use(transient.image_id, job, workspace_id="ws-a")
        assert await images.record_use(kept.image_id, job, workspace_id="ws-a")
    assert await images.record_use(transient.image_id, "job-1")  # idempotent
    assert await images.open_uses(transient.image_id) == {"job-1", "job-2"}

    await images.end_use("job-1")
    await images.end_use("job-1")  # a replayed event
    assert await images.release_unconsented([transient.image_id, kept.image_id]) == []
    assert await images.open_uses(transient.image_id) == {"job-2"}

    await images.end_use("job-2")
    both = [transient.image_id, kept.image_id]
    assert await images.release_unconsented(both, now=NOW) == [transient.image_id]
    assert await images.get_meta("ws-a", transient.image_id) is None
    tombstone = await images.get_tombstone("ws-a", transient.image_id)
    assert tombstone is not None and tombstone.reason == JOBS_FINISHED
    # Consent keeps an image past its jobs; the use is gone once the image is.
    assert await images.get_meta("ws-a", kept.image_id) is not None
    assert not await images.record_use(transient.image_id, "job-3")
    assert await images.release_unconsented(both) == []


async def test_an_end_given_with_its_images_covers_a_use_recorded_late(
    images: ImageStore,
) -> None:
    meta = await upload(images)
    await images.end_use("job-1", [meta.image_id])
    assert await images.record_use(meta.image_id, "job-1")
    assert await images.open_uses(meta.image_id) == set()
    assert await images.release_unconsented([meta.image_id]) == [meta.image_id]


async def test_many_jobs_starting_and_ending_at_once(images: ImageStore) -> None:
    metas = [await upload(images) for _ in range(4)]
    jobs = [f"job-{n}" for n in range(40)]
    uses = {job: random.Random(job).sample(metas, k=2) for job in jobs}
    released: list[str] = []

    async def run_job(job: str, still_running: set[str]) -> None:
        ids = [m.image_id for m in uses[job]]
        await asyncio.gather(*(images.record_use(i, job) for i in ids))
        await asyncio.sleep(random.random() / 50)
        if job in still_running:
            return
        await images.end_use(job)
        released.extend(await images.release_unconsented(ids))

    # A job that stays running keeps its images through every other job's release.
    running = {"job-7"}
    await asyncio.gather(*(run_job(job, running) for job in jobs))
    held = {m.image_id for m in uses["job-7"]}
    assert set(released) == {m.image_id for m in metas} - held
    assert len(released) == len(set(released))  # deleted once each
    for image_id in held:
        assert await images.get_meta("ws-a", image_id) is not None
        assert await images.open_uses(image_id) == {"job-7"}

    await images.end_use("job-7")
    assert sorted(await images.release_unconsented(held)) == sorted(held)


async def test_concurrent_releases_of_one_image_delete_it_once(images: ImageStore) -> None:
    meta = await upload(images)
    jobs = [f"job-{n}" for n in range(30)]
    await asyncio.gather(*(images.record_use(meta.image_id, job) for job in jobs))

    async def finish(job: str) -> list[str]:
        await images.end_use(job)
        return await images.release_unconsented([meta.image_id])

    results = await asyncio.gather(*(finish(job) for job in jobs))
    assert sum(len(r) for r in results) == 1
    assert await images.get_meta("ws-a", meta.image_id) is None


async def test_sweep_deletes_what_retention_or_disuse_ended(images: ImageStore) -> None:
    day = timedelta(days=1)
    expired = await upload(images, consent=True, retention_days=1, created_at=NOW - 2 * day)
    expiring_later = await upload(images, consent=True, retention_days=30, created_at=NOW)
    old_unused = await upload(images, created_at=NOW - 2 * day)
    old_in_use = await upload(images, created_at=NOW - 2 * day)
    old_done = await upload(images, created_at=NOW - 2 * day)
    fresh_unused = await upload(images, created_at=NOW)
    await images.record_use(old_in_use.image_id, "job-running")
    await images.record_use(old_done.image_id, "job-done")
    await images.end_use("job-done")

    assert await images.sweep_expired(NOW) == [expired.image_id]
    tombstone = await images.get_tombstone("ws-a", expired.image_id)
    assert tombstone is not None and (tombstone.reason, tombstone.deleted_at) == (
        RETENTION_ENDED,
        NOW,
    )

    swept = await images.sweep_expired(NOW, unused_before=NOW - day)
    assert sorted(swept) == sorted([old_unused.image_id, old_done.image_id])
    tombstones = {image_id: await images.get_tombstone("ws-a", image_id) for image_id in swept}
    assert {i: t.reason for i, t in tombstones.items() if t} == {
        old_unused.image_id: NEVER_USED,
        old_done.image_id: JOBS_FINISHED,
    }
    for kept in (expiring_later, old_in_use, fresh_unused):
        assert await images.get_meta("ws-a", kept.image_id) is not None
    later = NOW + timedelta(days=31)
    assert await images.sweep_expired(later) == [expiring_later.image_id]
