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

    engine: EngineName = Field(description="The engine that runs the job.")
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

    workspace_id: str = Field(description="Workspace whose quotas hold the reservation.")
    deltas: dict[str, float] = Field(description="Quota counter -> amount reserved.")
    tokens_metered: bool = Field(
        description="The job draws on the monthly token quota (its model is not free)."
    )
    gpu_metered: bool = Field(
        description="The job draws on the monthly GPU-seconds quota (it runs on a GPU)."
    )
    settle_at_end: bool = Field(
        description="The worker settles the job before announcing its end (the workspace has "
        "a concurrency limit, so its next job may be waiting for the slot); otherwise the "
        "usage-meter consumer settles it from the events."
    )


class InferenceRequested(BaseModel):
    """ai.inference-requested.<pool>.v1: a job admitted by the gateway, after fallback."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID = Field(description="The job's id; also the Kafka key.")
    task: ModelTask = Field(description="fast_text or image_text.")
    text_task: TextTask = Field(description="summary, bullets, qa or free.")
    prompt: str = Field(description="The caller's prompt (the question, for qa).")
    context: list[ContextDocument] = Field(
        default_factory=list,
        description="Texts the job may read, resolved by the gateway from the caller's refs.",
    )
    images: list[ImageInput] = Field(
        default_factory=list,
        description="Images the job reads (image_text models), by id and sha256.",
    )
    max_tokens: int = Field(ge=1, description="Most tokens the model may generate.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; none: the engine's default."
    )
    requested_model_id: str = Field(description="The model the caller asked for (before fallback).")
    model_id: str = Field(description="The model that runs the job (after fallback).")
    fallback_reason: str | None = Field(
        default=None,
        description="Why model_id differs from requested_model_id; none when it does not.",
    )
    pool: str = Field(description="The worker pool whose topic carries the job.")
    target: EngineTarget = Field(description="Where and how the job runs.")
    pricing: Pricing | None = Field(default=None, description="The resolved model's pricing.")
    queued_at: datetime = Field(description="When the gateway admitted the job (UTC).")
    quota: QuotaReservation | None = Field(
        default=None, description="The job's quota reservation (none: admitted unmetered)."
    )


class InferenceProgressed(BaseModel):
    """ai.inference-progressed.v1: a running job's progress, published at a bounded rate."""

    job_id: uuid.UUID = Field(description="The job's id; also the Kafka key.")
    tokens_generated: int = Field(ge=0, description="Completion tokens generated so far.")
    max_tokens: int = Field(ge=1, description="Most tokens the job may generate.")
    started_at: datetime = Field(description="When a worker started the job (UTC).")
    first_token_at: datetime | None = Field(
        default=None, description="When the first token came (UTC); none before it."
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(
        default=0,
        ge=0,
        description="Tokens of the input (prompt, context, images) as the engine counted them.",
    )
    completion_tokens: int = Field(default=0, ge=0, description="Tokens generated.")


class JobTimings(BaseModel):
    queued_at: datetime | None = Field(
        default=None, description="When the gateway admitted the job (UTC)."
    )
    started_at: datetime | None = Field(default=None, description="When a worker started it (UTC).")
    first_token_at: datetime | None = Field(
        default=None, description="When the first token came (UTC); none if none came."
    )
    finished_at: datetime | None = Field(default=None, description="When it ended (UTC).")


class JobError(BaseModel):
    code: str = Field(description="Machine-readable error kind.")
    message: str = Field(description="What went wrong and what to do.")
    retryable: bool = Field(description="Whether submitting the same job again may succeed.")


class InferenceCompleted(BaseModel):
    """ai.inference-completed.v1."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID = Field(description="The job's id; also the Kafka key.")
    text: str = Field(description="The generated text.")
    finish_reason: str = Field(
        description="Why generation stopped, as the engine said: stop or length."
    )
    usage: Usage = Field(description="Tokens read and generated.")
    timings: JobTimings = Field(
        description="When the job was queued, started, gave its first token and ended."
    )
    model_id: str = Field(description="The model that ran the job.")
    engine: EngineName = Field(description="The engine that ran it.")
    pool: str = Field(description="The worker pool that ran it.")
    worker_id: str = Field(description="The worker process that ran it.")
    gpu_seconds: float = Field(
        default=0.0, ge=0, description="GPU time billed to the job (its share of its batch)."
    )


class InferenceFailed(BaseModel):
    """ai.inference-failed.v1."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID = Field(description="The job's id; also the Kafka key.")
    error: JobError = Field(description="What went wrong and whether to retry.")
    usage: Usage = Field(
        default_factory=Usage, description="Tokens read and generated before it failed."
    )
    timings: JobTimings = Field(description="When the job was queued, started and ended.")
    model_id: str = Field(description="The model the job ran on.")
    engine: EngineName = Field(description="The engine it ran on.")
    pool: str = Field(description="The worker pool it ran in.")
    worker_id: str = Field(description="The worker process it ran in.")


class InferenceCancelled(BaseModel):
    """ai.inference-cancelled.v1: a caller cancelled a queued or running job."""

    job_id: uuid.UUID = Field(description="The job's id; also the Kafka key.")
    cancelled_at: datetime = Field(description="When the caller cancelled it (UTC).")


class InferenceMetrics(BaseModel):
    """analytics.inference-metrics.v1: one record per finished job, for cost/latency readers."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID = Field(description="The job's id.")
    workspace_id: str = Field(description="Workspace the job ran for.")
    model_id: str = Field(
        description="The model that ran the job (after fallback); also the Kafka key."
    )
    engine: EngineName = Field(
        description="The engine that ran it: vllm, tgi, transformers, extractive or remote_llm."
    )
    pool: str = Field(description="The worker pool that ran it.")
    outcome: JobStatus = Field(description="completed or failed.")
    queue_ms: float = Field(ge=0, description="Admission to start on a worker.")
    ttft_ms: float | None = Field(default=None, ge=0, description="Start to first token.")
    total_ms: float = Field(ge=0, description="Admission to the end.")
    prompt_tokens: int = Field(ge=0, description="Tokens of the input as the engine counted them.")
    completion_tokens: int = Field(ge=0, description="Tokens generated.")
    tokens_per_s: float = Field(ge=0, description="Completion tokens / generation time.")
    cost: float = Field(ge=0, description="Cost in cost_currency (see the model's pricing).")
    cost_currency: str = Field(default="USD", description="Currency of cost: USD.")
    cost_basis: str = Field(description="per_token, per_gpu_second or free.")
    gpu_seconds: float = Field(
        default=0.0, ge=0, description="GPU time billed to the job (its share of its batch)."
    )
    finished_at: datetime = Field(description="When the job ended (UTC).")
