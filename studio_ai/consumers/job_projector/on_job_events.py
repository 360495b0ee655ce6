"""ai.inference-progressed / -completed / -failed / -cancelled.v1 -> inference_jobs.

Group: job-projector. Idempotency: the domain folds ignore progress that does not move a job
forward and keep the earliest terminal event, so duplicates, replays and any arrival order
give the same document. When a job ends, the images only it used without consent are deleted,
each with one image.deleted audit record (a stable id per image, so a repeat is kept once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.images import JOBS_FINISHED, ImageTombstone
from studio_ai.domain.inference_job import (
    InferenceJob,
    apply_cancelled,
    apply_completed,
    apply_failed,
    apply_progress,
)
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.runtime.broker import EventPublisher
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceProgressed,
)

log = logging.getLogger(__name__)

RELEASER = "system:job-projector"


async def project_progressed(event: Envelope[InferenceProgressed], store: MongoStore) -> None:
    await store.jobs.update_job(
        event.payload.job_id, lambda job: apply_progress(job, event.payload)
    )


async def project_completed(
    event: Envelope[InferenceCompleted], store: MongoStore, publisher: EventPublisher
) -> None:
    await _end(
        store,
        publisher,
        event,
        event.payload.job_id,
        lambda job: apply_completed(
            job, event.payload, occurred_at=event.occurred_at, event_id=event.event_id
        ),
    )


async def project_failed(
    event: Envelope[InferenceFailed], store: MongoStore, publisher: EventPublisher
) -> None:
    await _end(
        store,
        publisher,
        event,
        event.payload.job_id,
        lambda job: apply_failed(
            job, event.payload, occurred_at=event.occurred_at, event_id=event.event_id
        ),
    )


async def project_cancelled(
    event: Envelope[InferenceCancelled], store: MongoStore, publisher: EventPublisher
) -> None:
    await _end(
        store,
        publisher,
        event,
        event.payload.job_id,
        lambda job: apply_cancelled(job, event.payload, event_id=event.event_id),
    )


async def _end(
    store: MongoStore,
    publisher: EventPublisher,
    event: Envelope[Any],
    job_id: uuid.UUID,
    change: Callable[[InferenceJob | None], InferenceJob | None],
) -> None:
    """Apply a terminal event, then release the images of the job as it now stands (also when
    the event was a duplicate, so a release interrupted by a crash is done on redelivery)."""
    job = await store.jobs.update_job(job_id, change)
    await _release_images(store, publisher, job or await store.jobs.get_job(job_id), event)


async def _release_images(
    store: MongoStore, publisher: EventPublisher, job: InferenceJob | None, event: Envelope[Any]
) -> None:
    if job is None or not job.image_refs or not job.status.terminal:
        return
    await store.images.end_use(str(job.job_id), job.image_refs)
    deleted = await store.images.release_unconsented(job.image_refs)
    if deleted:
        log.info(
            "unconsented images deleted after their jobs ended",
            extra={"job_id": str(job.job_id), "images": deleted},
        )
    await _audit_released(publisher, job, await store.images.tombstones(job.image_refs), event)


async def _audit_released(
    publisher: EventPublisher,
    job: InferenceJob,
    tombstones: list[ImageTombstone],
    event: Envelope[Any],
) -> None:
    """One image.deleted record per image of the job that was released when its jobs ended:
    by the tombstones, not by what this delivery deleted, so the records of a release that a
    crash interrupted are still published when the event is delivered again."""
    hashes = {ref.ref: ref.sha256 for ref in job.inputs}
    for tombstone in tombstones:
        if tombstone.workspace_id != job.workspace_id or tombstone.reason != JOBS_FINISHED:
            continue
        ref = f"image:{tombstone.image_id}"
        await publish_audit(
            publisher,
            workspace_id=job.workspace_id,
            user_id=RELEASER,
            action=AuditAction.IMAGE_DELETED,
            outcome=AuditOutcome.DONE,
            correlation_id=event.correlation_id,
            inputs_refs=[
                InputRef(ref=ref, sha256=hashes.get(ref)),
                InputRef(ref=f"job:{job.job_id}"),
            ],
            reason=tombstone.reason,
            audit_id=audit_id_for(AuditAction.IMAGE_DELETED, tombstone.image_id),
            created_at=tombstone.deleted_at,
        )
