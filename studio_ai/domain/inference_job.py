"""InferenceJob: one job's state (the job projection), and the rules for changing it.

Every change is a pure function from the current state to the next (None: nothing changes),
so replaying the ai.* topics leaves the projection as it was. The job's events travel on
several topics and may be seen in any order, so the end of a job is decided by time: the
earliest terminal event (completed, failed or cancelled; ties broken by event id) wins, and a
progress event never moves a job backwards or out of a terminal state.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.domain.errors import Conflict
from studio_ai.schemas.audit import InputRef
from studio_ai.schemas.inference import (
    ContextDocument,
    EngineName,
    ImageInput,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceProgressed,
    InferenceRequested,
    JobError,
    JobStatus,
    JobTimings,
    TextTask,
    Usage,
)
from studio_ai.schemas.models import ModelTask


class JobProgress(BaseModel):
    tokens_generated: int = 0
    max_tokens: int = 1


class JobResult(BaseModel):
    text: str
    finish_reason: str


class InferenceJob(BaseModel):
    """The job projection: one document per job_id."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    workspace_id: str
    user_id: str
    status: JobStatus = JobStatus.QUEUED
    task: ModelTask
    text_task: TextTask = TextTask.FREE
    requested_model_id: str
    model_id: str
    fallback_reason: str | None = None
    pool: str
    engine: EngineName
    revision_sha: str | None = None
    context_refs: list[str] = Field(default_factory=list)
    image_refs: list[str] = Field(default_factory=list)
    inputs: list[InputRef] = Field(
        default_factory=list,
        description="Every input by ref with its sha256 (prompt, context, images): no content.",
    )
    progress: JobProgress = Field(default_factory=JobProgress)
    result: JobResult | None = None
    error: JobError | None = None
    timings: JobTimings = Field(default_factory=JobTimings)
    usage: Usage = Field(default_factory=Usage)
    worker_id: str | None = None
    ended_by: str | None = Field(
        default=None, description="'<occurred_at ISO>|<event_id>' of the terminal event."
    )
    version: int = 0


def admitted_job(
    request: InferenceRequested,
    *,
    workspace_id: str,
    user_id: str,
    context_refs: list[str],
    image_refs: list[str],
) -> InferenceJob:
    return InferenceJob(
        job_id=request.job_id,
        workspace_id=workspace_id,
        user_id=user_id,
        task=request.task,
        text_task=request.text_task,
        requested_model_id=request.requested_model_id,
        model_id=request.model_id,
        fallback_reason=request.fallback_reason,
        pool=request.pool,
        engine=request.target.engine,
        revision_sha=request.target.revision_sha,
        context_refs=context_refs,
        image_refs=image_refs,
        inputs=job_inputs(request),
        progress=JobProgress(max_tokens=request.max_tokens),
        timings=JobTimings(queued_at=request.queued_at),
    )


def job_inputs(request: InferenceRequested) -> list[InputRef]:
    """The job's inputs by ref and sha256: what an audit record or a receipt may hold."""
    return inputs_of(request.prompt, request.context, request.images)


def inputs_of(
    prompt: str, context: list[ContextDocument], images: list[ImageInput]
) -> list[InputRef]:
    return [
        InputRef(ref="prompt", sha256=_sha256(prompt)),
        *(InputRef(ref=d.ref, sha256=_sha256(d.text)) for d in context),
        *(InputRef(ref=f"image:{i.image_id}", sha256=i.sha256) for i in images),
    ]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _next(job: InferenceJob, **changes: object) -> InferenceJob:
    return job.model_copy(update={**changes, "version": job.version + 1})


def apply_progress(job: InferenceJob | None, event: InferenceProgressed) -> InferenceJob | None:
    if job is None or job.status.terminal:
        return None
    if (
        job.status is JobStatus.RUNNING
        and event.tokens_generated <= job.progress.tokens_generated
        and (job.timings.first_token_at or not event.first_token_at)
    ):
        return None
    timings = job.timings.model_copy(
        update={
            "started_at": job.timings.started_at or event.started_at,
            "first_token_at": job.timings.first_token_at or event.first_token_at,
        }
    )
    progress = JobProgress(
        tokens_generated=max(job.progress.tokens_generated, event.tokens_generated),
        max_tokens=event.max_tokens,
    )
    return _next(job, status=JobStatus.RUNNING, progress=progress, timings=timings)


def _ends_before(job: InferenceJob, occurred_at: datetime, event_id: uuid.UUID) -> bool:
    """Whether an end at (occurred_at, event_id) comes before the one the job already has."""
    return job.ended_by is None or _end_mark(occurred_at, event_id) < job.ended_by


def _end_mark(occurred_at: datetime, event_id: uuid.UUID) -> str:
    # A fixed-width UTC form, so that comparing marks as strings compares times.
    return f"{occurred_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}|{event_id}"


def apply_completed(
    job: InferenceJob | None,
    event: InferenceCompleted,
    *,
    occurred_at: datetime,
    event_id: uuid.UUID,
) -> InferenceJob | None:
    if job is None or not _ends_before(job, occurred_at, event_id):
        return None
    return _next(
        job,
        status=JobStatus.COMPLETED,
        result=JobResult(text=event.text, finish_reason=event.finish_reason),
        error=None,
        usage=event.usage,
        timings=event.timings,
        model_id=event.model_id,
        engine=event.engine,
        worker_id=event.worker_id,
        progress=JobProgress(
            tokens_generated=event.usage.completion_tokens, max_tokens=job.progress.max_tokens
        ),
        ended_by=_end_mark(occurred_at, event_id),
    )


def apply_failed(
    job: InferenceJob | None,
    event: InferenceFailed,
    *,
    occurred_at: datetime,
    event_id: uuid.UUID,
) -> InferenceJob | None:
    if job is None or not _ends_before(job, occurred_at, event_id):
        return None
    return _next(
        job,
        status=JobStatus.FAILED,
        result=None,
        error=event.error,
        usage=event.usage,
        timings=event.timings,
        # Set everything a completion sets, so that which end arrived first cannot show.
        model_id=event.model_id,
        engine=event.engine,
        worker_id=event.worker_id,
        progress=JobProgress(
            tokens_generated=event.usage.completion_tokens, max_tokens=job.progress.max_tokens
        ),
        ended_by=_end_mark(occurred_at, event_id),
    )


def apply_cancelled(
    job: InferenceJob | None,
    event: InferenceCancelled,
    *,
    event_id: uuid.UUID,
) -> InferenceJob | None:
    if job is None or not _ends_before(job, event.cancelled_at, event_id):
        return None
    timings = job.timings.model_copy(update={"finished_at": event.cancelled_at})
    return _next(
        job,
        status=JobStatus.CANCELLED,
        result=None,
        error=None,
        timings=timings,
        ended_by=_end_mark(event.cancelled_at, event_id),
    )


def cancellable(job: InferenceJob) -> None:
    """Raise Conflict unless the job may still be cancelled."""
    if job.status.terminal:
        raise Conflict(
            f"job {job.job_id} is already {job.status.value}; only queued or running jobs can "
            "be cancelled"
        )


def cancellation_event_id(job_id: uuid.UUID) -> uuid.UUID:
    """One cancellation per job, whoever publishes it and however often."""
    return uuid.uuid5(job_id, "ai.inference-cancelled")
