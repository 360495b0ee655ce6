"""Plans (what a workspace may use, and how much) and a workspace's plan assignment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.schemas.inference import TextTask
from studio_ai.schemas.models import Modality


class QuotaName(StrEnum):
    JOBS_PER_DAY = "jobs_per_day"
    TOKENS_PER_MONTH = "tokens_per_month"
    GPU_SECONDS_PER_MONTH = "gpu_seconds_per_month"
    CONCURRENT_JOBS = "concurrent_jobs"


class Quotas(BaseModel):
    """Limits per workspace; null means unlimited."""

    model_config = ConfigDict(extra="forbid")

    jobs_per_day: int | None = Field(default=None, ge=0, description="Jobs admitted per UTC day.")
    tokens_per_month: int | None = Field(
        default=None, ge=0, description="Prompt + completion tokens per UTC month (metered models)."
    )
    gpu_seconds_per_month: float | None = Field(
        default=None, ge=0, description="GPU-seconds per UTC month (models on GPU engines)."
    )
    concurrent_jobs: int | None = Field(default=None, ge=0, description="Jobs queued or running.")

    def limit(self, name: QuotaName) -> float | None:
        value: float | None = getattr(self, name.value)
        return value


class Plan(BaseModel):
    """One plan from the plans file: the features it allows and its quotas."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    description: str = ""
    tasks: list[TextTask] = Field(description="Text tasks allowed (summary, bullets, qa, free).")
    modalities: list[Modality] = Field(description="text, multimodal (images).")
    models: list[str] = Field(
        description="Model ids allowed; shell-style patterns ('meta-llama/*', '*')."
    )
    quotas: Quotas = Field(default_factory=Quotas)
    image_retention_max_days: int = Field(
        ge=0, description="Longest retention a consented image may ask for (0: none kept)."
    )


class PlanOverrides(BaseModel):
    """An operator's per-workspace changes to its plan's limits. Only the fields given apply."""

    model_config = ConfigDict(extra="forbid")

    quotas: dict[QuotaName, float | None] = Field(
        default_factory=dict, description="Quota name -> limit (null: unlimited)."
    )
    image_retention_max_days: int | None = Field(default=None, ge=0)


class WorkspacePlan(BaseModel):
    """The plan_assignments document of one workspace."""

    workspace_id: str
    plan: str
    overrides: PlanOverrides = Field(default_factory=PlanOverrides)
    updated_at: datetime | None = None
    updated_by: str | None = None


class SetPlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(description="A plan name from the plans file (GET /plans lists them).")
    overrides: PlanOverrides = Field(default_factory=PlanOverrides)


class QuotaUsage(BaseModel):
    quota: QuotaName
    limit: float | None = Field(description="null: unlimited.")
    used: float = Field(description="Includes what running jobs have reserved.")
    remaining: float | None
    period: str | None = Field(description="The UTC day or month counted; null for concurrency.")
    resets_at: datetime | None


class UsageView(BaseModel):
    workspace_id: str
    plan: str
    tasks: list[TextTask]
    modalities: list[Modality]
    models: list[str]
    image_retention_max_days: int
    quotas: list[QuotaUsage]
