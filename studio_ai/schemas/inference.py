"""Inference jobs: their status, and the ai.* and analytics.* event payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.schemas.models import ModelTask, Pricing


class TextTask(StrEnum):
    SUMMARY = "summary"
    BULLETS = "bullets"
    QA = "qa"
    FREE = "free"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class EngineName(StrEnum):
    """What actually ran a job: the catalog's engine kinds plus the built-in extractive one."""

    VLLM = "vllm"
    TGI = "tgi"
    TRANSFORMERS = "transformers"
    EXTRACTIVE = "extractive"
    # The operator's remote OpenAI-compatible LLM (LLM_BASE_URL): research insights only.
    REMOTE_LLM = "remote_llm"


class ContextDocument(BaseModel):
    """Text a job may read, resolved by the gateway from a context ref of the caller's
    workspace."""

    ref: str = Field(description="The ref the caller gave, e.g. job:<id> or note:<id>.")
    text: str = Field(description="The text behind the ref.")


class ImageInput(BaseModel):
    image_id: str = Field(description="Id of an image uploaded with POST /images.")
    sha256: str = Field(description="sha256 of the image bytes, checked by the worker.")
    media_type: str = Field(description="image/png, image/jpeg or image/webp.")


class EngineTarget(BaseModel):
    """Where the job runs: copied from the resolved model's installation and runtime."""

    engine: EngineName
    local_path: str | None = Field(default=None, description="Model folder (transformers).")
    endpoint_url: str | None = Field(
        default=None, description="OpenAI-compatible server base URL (tgi, vllm)."
    )
    served_model: str | None = Field(
        default=None, description="Model name sent to the server; default: the model id."
    )
    revision_sha: str | None = Field(default=None, description="Installed commit sha.")


class QuotaReservation(BaseModel):
    """What admission reserved of the workspace's quotas for the job (see domain/quotas.py)."""

    workspace_id: str
    deltas: dict[str, float] = Field(description="Quota counter -> amount reserved.")
    tokens_metered: bool
    gpu_metered: bool
    settle_at_end: bool = Field(
        description="The worker settles the job before announcing its end (the workspace has "
        "a concurrency limit, so its next job may be waiting for the slot); otherwise the "
        "usage-meter consumer settles it from the events."
    )


class InferenceRequested(BaseModel):
    """ai.inference-requested.<pool>.v1: a job admitted by the gateway, after fallback."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    task: ModelTask = Field(description="fast_text or image_text.")
    text_task: TextTask = Field(description="summary, bullets, qa or free.")
    prompt: str = Field(description="The caller's prompt (the question, for qa).")
    context: list[ContextDocument] = Field(default_factory=list)
    images: list[ImageInput] = Field(default_factory=list)
    max_tokens: int = Field(ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    requested_model_id: str
    model_id: str = Field(description="The model that runs the job (after fallback).")
    fallback_reason: str | None = None
    pool: str
    target: EngineTarget
    pricing: Pricing | None = Field(default=None, description="The resolved model's pricing.")
    queued_at: datetime
    quota: QuotaReservation | None = Field(
        default=None, description="The job's quota reservation (none: admitted unmetered)."
    )


class InferenceProgressed(BaseModel):
    """ai.inference-progressed.v1: a running job's progress, published at a bounded rate."""

    job_id: uuid.UUID
    tokens_generated: int = Field(ge=0)
    max_tokens: int = Field(ge=1)
    started_at: datetime
    first_token_at: datetime | None = None


class Usage(BaseModel):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class JobTimings(BaseModel):
    queued_at: datetime | None = None
    started_at: datetime | None = None
    first_token_at: datetime | None = None
    finished_at: datetime | None = None


class JobError(BaseModel):
    code: str = Field(description="Machine-readable error kind.")
    message: str = Field(description="What went wrong and what to do.")
    retryable: bool = Field(description="Whether submitting the same job again may succeed.")


class InferenceCompleted(BaseModel):
    """ai.inference-completed.v1."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    text: str
    finish_reason: str
    usage: Usage
    timings: JobTimings
    model_id: str
    engine: EngineName
    pool: str
    worker_id: str
    gpu_seconds: float = Field(
        default=0.0, ge=0, description="GPU time billed to the job (its share of its batch)."
    )


class InferenceFailed(BaseModel):
    """ai.inference-failed.v1."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    error: JobError
    usage: Usage = Field(default_factory=Usage)
    timings: JobTimings
    model_id: str
    engine: EngineName
    pool: str
    worker_id: str


class InferenceCancelled(BaseModel):
    """ai.inference-cancelled.v1: a caller cancelled a queued or running job."""

    job_id: uuid.UUID
    cancelled_at: datetime


class InferenceMetrics(BaseModel):
    """analytics.inference-metrics.v1: one record per finished job, for cost/latency readers."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    workspace_id: str
    model_id: str
    engine: EngineName
    pool: str
    outcome: JobStatus = Field(description="completed or failed.")
    queue_ms: float = Field(ge=0, description="Admission to start on a worker.")
    ttft_ms: float | None = Field(default=None, ge=0, description="Start to first token.")
    total_ms: float = Field(ge=0, description="Admission to the end.")
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    tokens_per_s: float = Field(ge=0, description="Completion tokens / generation time.")
    cost: float = Field(ge=0, description="Cost in cost_currency (see the model's pricing).")
    cost_currency: str = Field(default="USD")
    cost_basis: str = Field(description="per_token, per_gpu_second or free.")
    gpu_seconds: float = Field(
        default=0.0, ge=0, description="GPU time billed to the job (its share of its batch)."
    )
    finished_at: datetime
