"""Model catalog entries, model installation state and the models.* event payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Modality(StrEnum):
    TEXT = "text"
    MULTIMODAL = "multimodal"


class ModelTask(StrEnum):
    FAST_TEXT = "fast_text"
    IMAGE_TEXT = "image_text"


class EngineKind(StrEnum):
    VLLM = "vllm"
    TRANSFORMERS = "transformers"
    TGI = "tgi"


class Transport(StrEnum):
    HF_API = "hf_api"
    HF_CLI = "hf_cli"
    MIRROR = "mirror"
    LOCAL = "local"


class ModelStatus(StrEnum):
    AVAILABLE = "available"
    DOWNLOADING = "downloading"
    INSTALLED = "installed"
    FAILED = "failed"


class DownloadFailureCode(StrEnum):
    GATED_NO_TOKEN = "gated_no_token"  # noqa: S105 - a failure code, not a secret
    REPO_NOT_FOUND = "repo_not_found"
    REVISION_NOT_FOUND = "revision_not_found"
    DISK_FULL = "disk_full"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    SOURCE_UNREACHABLE = "source_unreachable"
    SOURCE_NOT_CONFIGURED = "source_not_configured"
    NO_FILES = "no_files"
    TRANSFER_FAILED = "transfer_failed"


class PricingBasis(StrEnum):
    PER_TOKEN = "per_token"  # noqa: S105 - a pricing basis, not a secret
    PER_GPU_SECOND = "per_gpu_second"
    FREE = "free"


class Pricing(BaseModel):
    """What a job on the model costs: per token for a remote API, per GPU-second self-hosted."""

    model_config = ConfigDict(extra="forbid")

    basis: PricingBasis = Field(description="per_token, per_gpu_second or free.")
    usd_per_1m_prompt_tokens: float = Field(
        default=0.0, ge=0, description="USD per million prompt tokens (per_token)."
    )
    usd_per_1m_completion_tokens: float = Field(
        default=0.0, ge=0, description="USD per million completion tokens (per_token)."
    )
    usd_per_gpu_hour: float = Field(
        default=0.0, ge=0, description="Price of the GPU the model's pool runs on."
    )


class CatalogEntry(BaseModel):
    """A model the workspace may install."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(description="Stable id, e.g. meta-llama/Llama-3.2-1B-Instruct.")
    display_name: str = Field(description="Name shown to people.")
    hub_repo_id: str = Field(description="Repository on the hub (org/name).")
    revision: str | None = Field(
        default=None, description="Pinned revision (commit sha, tag or branch); None: main."
    )
    modality: Modality = Field(description="text, or multimodal (image + text).")
    task: ModelTask = Field(description="What the app uses it for: fast_text or image_text.")
    default_engine: EngineKind = Field(description="Engine used unless the runtime says otherwise.")
    gated: bool = Field(default=False, description="The hub requires an accepted license + token.")
    approx_size_bytes: int = Field(ge=0, description="Approximate size of the weights on disk.")
    license: str = Field(
        description="License name, e.g. llama3.2 or health-ai-developer-foundations."
    )
    description: str = Field(default="", description="What the model is good for.")
    default: bool = Field(
        default=False, description="The default model for its task unless a workspace says else."
    )
    pricing: Pricing | None = Field(
        default=None,
        description="Cost per job; None: per GPU-second at the deployment's default GPU price.",
    )


class DownloadProgress(BaseModel):
    bytes_done: int = Field(ge=0, description="Bytes on disk so far.")
    bytes_total: int = Field(ge=0, description="Bytes to download in all.")
    files_done: int = Field(default=0, ge=0, description="Files finished.")
    files_total: int = Field(default=0, ge=0, description="Files to download in all.")
    percent: float = Field(ge=0, le=100, description="bytes_done / bytes_total as a percentage.")


class RuntimeConfig(BaseModel):
    """How inference runs for an installed model."""

    engine: EngineKind = Field(description="Engine that serves the model.")
    endpoint_url: str | None = Field(
        default=None, description="Base URL of a TGI / vLLM server (OpenAI-compatible API)."
    )
    pool: str = Field(description="Inference worker pool that owns the model's jobs.")
    served_model: str | None = Field(
        default=None,
        description="Model name the TGI / vLLM server expects; default: the model id.",
    )


class ModelDownloadRequested(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    download_id: uuid.UUID = Field(description="One id per download attempt.")
    model_id: str = Field(description="Catalog id of the model.")
    hub_repo_id: str = Field(description="Repository to fetch.")
    revision: str | None = Field(description="Requested revision; None: the catalog's or main.")
    transport: Transport = Field(description="How the files are fetched.")
    gated: bool = Field(description="Whether the hub needs a token for it.")
    local_dir: str = Field(description="Folder name under the models directory.")
    modality: Modality = Field(description="Modality, copied from the catalog.")
    task: ModelTask = Field(description="Task, copied from the catalog.")
    default_engine: EngineKind = Field(description="Engine, copied from the catalog.")


class ModelDownloadProgressed(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    download_id: uuid.UUID = Field(description="The download this progress belongs to.")
    model_id: str = Field(description="Catalog id of the model.")
    progress: DownloadProgress = Field(description="Progress so far.")


class InstalledFile(BaseModel):
    path: str = Field(description="Path relative to the model folder.")
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str | None = Field(
        default=None, description="Verified sha256, where the hub gives one."
    )


class ModelInstalled(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    download_id: uuid.UUID = Field(description="The download that installed it.")
    model_id: str = Field(description="Catalog id of the model.")
    local_path: str = Field(description="Absolute path of the model folder on the worker node.")
    revision_sha: str = Field(description="Commit sha the files come from.")
    size_bytes: int = Field(ge=0, description="Total size of the installed files.")
    files: list[InstalledFile] = Field(description="Installed files.")
    verified_files: int = Field(ge=0, description="Files whose sha256 matched the hub's.")
    transport: Transport = Field(description="How the files were fetched.")
    modality: Modality = Field(description="Modality of the model.")
    engine: EngineKind = Field(description="Engine it will run on by default.")
    installed_at: datetime = Field(description="When the files were verified.")


class ModelDownloadFailed(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    download_id: uuid.UUID = Field(description="The download that failed.")
    model_id: str = Field(description="Catalog id of the model.")
    code: DownloadFailureCode = Field(description="Machine-readable failure kind.")
    reason: str = Field(description="What went wrong and what to do about it.")
    retryable: bool = Field(description="Whether asking again may succeed without changes.")


class ModelDownloadCancelled(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    download_id: uuid.UUID = Field(description="The download that was stopped.")
    model_id: str = Field(description="Catalog id of the model.")
    bytes_done: int = Field(ge=0, description="Bytes on disk when it stopped.")
