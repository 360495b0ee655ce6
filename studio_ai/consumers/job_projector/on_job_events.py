"""ai.inference-progressed / -completed / -failed / -cancelled.v1 -> inference_jobs.

Group: job-projector. Idempotency: the domain folds ignore progress that does not move a job
forward and keep the earliest terminal event, so duplicates, replays and any arrival order
give the same document. When a job ends, the images only it used without consent are deleted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.inference_job import (
    InferenceJob,
    apply_cancelled,
    apply_completed,
    apply_failed,
    apply_progress,
)
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceProgressed,
)

log = logging.getLogger(__name__)


async def project_progressed(event: Envelope[InferenceProgressed], store: MongoStore) -> None:
    await store.jobs.update_job(
        event.payload.job_id, lambda job: apply_progress(job, event.payload)
    )


async def project_completed(event: Envelope[InferenceCompleted], store: MongoStore) -> None:
    await _end(
        store,
        event.payload.job_id,
        lambda job: apply_completed(
            job, event.payload, occurred_at=event.occurred_at, event_id=event.event_id
        ),
    )


async def project_failed(event: Envelope[InferenceFailed], store: MongoStore) -> None:
    await _end(
        store,
        event.payload.job_id,
        lambda job: apply_failed(
            job, event.payload, occurred_at=event.occurred_at, event_id=event.event_id
        ),
    )


async def project_cancelled(event: Envelope[InferenceCancelled], store: MongoStore) -> None:
    await _end(
        store,
        event.payload.job_id,
        lambda job: apply_cancelled(job, event.payload, event_id=event.event_id),
    )


async def _end(
    store: MongoStore,
    job_id: uuid.UUID,
    change: Callable[[InferenceJob | None], InferenceJob | None],
) -> None:
    """Apply a terminal event, then release the images of the job as it now stands (also when
    the event was a duplicate, so a release interrupted by a crash is done on redelivery)."""
    job = await store.jobs.update_job(job_id, change)
    await _release_images(store, job or await store.jobs.get_job(job_id))


async def _release_images(store: MongoStore, job: InferenceJob | None) -> None:
    if job is None or not job.image_refs or not job.status.terminal:
        return
    await store.images.end_use(str(job.job_id), job.image_refs)
    deleted = await store.images.release_unconsented(job.image_refs)
    if deleted:
        log.info(
            "unconsented images deleted after their jobs ended",
            extra={"job_id": str(job.job_id), "images": deleted},
        )
