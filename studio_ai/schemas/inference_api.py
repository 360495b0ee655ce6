"""Request and response bodies of the /ai API (inference jobs, model selector, metrics)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.schemas.inference import (
    EngineName,
    JobError,
    JobStatus,
    JobTimings,
    TextTask,
    Usage,
)
from studio_ai.schemas.models import Modality, ModelTask


class GenerateTextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(
        max_length=200, description="The model to use; it may fall back (see the job)."
    )
    prompt: str = Field(description="Text to work on, or the question for task qa.")
    context_refs: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Material the job may read: job:<job_id> (an earlier job's output) or "
        "note:<note_id>.",
    )
    task: TextTask = Field(default=TextTask.FREE, description="summary, bullets, qa or free.")
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens to generate.")
    temperature: float | None = Field(default=None, ge=0, le=2)


class GenerateMultimodalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(max_length=200, description="An image + text model.")
    prompt: str = Field(description="What to do with the images.")
    image_refs: list[str] = Field(
        min_length=1, max_length=4, description="Ids of images uploaded with POST /images."
    )
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


class JobLinks(BaseModel):
    self: str
    events: str
    cancel: str


class JobAccepted(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    status: JobStatus = JobStatus.QUEUED
    requested_model_id: str
    resolved_model_id: str
    fallback_reason: str | None = Field(
        default=None, description="Why the job does not run on the requested model."
    )
    pool: str
    engine: EngineName
    links: JobLinks


class ProgressView(BaseModel):
    tokens_generated: int
    max_tokens: int
    percent: float = Field(description="tokens_generated / max_tokens as a percentage.")


class ResultView(BaseModel):
    text: str
    finish_reason: str = Field(description="stop (the model ended) or length (max_tokens).")


class JobView(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    status: JobStatus
    task: ModelTask
    text_task: TextTask
    requested_model_id: str
    resolved_model_id: str
    fallback_reason: str | None
    engine: EngineName
    pool: str
    model_revision: str | None = Field(description="Commit sha of the installed model.")
    progress: ProgressView
    result: ResultView | None
    error: JobError | None
    timings: JobTimings
    usage: Usage
    context_refs: list[str]
    image_refs: list[str]
    cancel_requested: bool = Field(
        default=False, description="A cancel was asked for and is being carried out."
    )


class JobList(BaseModel):
    jobs: list[JobView]


class CancelAccepted(BaseModel):
    job_id: uuid.UUID
    status: Literal["cancelling"] = "cancelling"


Availability = Literal["available", "downloading", "installed", "failed"]


class SelectorModel(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str
    display_name: str
    modality: Modality
    availability: Availability = Field(description="available, downloading, installed, failed.")
    percent: float | None = Field(default=None, description="While downloading.")
    pool: str | None = Field(default=None, description="Worker pool, once installed.")
    live: bool = Field(description="Installed and its pool has a live worker: jobs run on it.")
    default: bool = Field(description="The workspace's default model for the task.")
    builtin: bool = Field(
        default=False, description="The extractive engine: no weights, the last resort."
    )


class SelectorList(BaseModel):
    task: ModelTask
    default_model_id: str | None
    models: list[SelectorModel]


class DefaultModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(max_length=200, description="A catalog model of the task.")


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)
    text: str = Field(min_length=1, description="Text a job may read through note:<id>.")


class NoteView(BaseModel):
    note_id: str
    ref: str = Field(description="Use as a context ref: note:<note_id>.")
    title: str
    chars: int
