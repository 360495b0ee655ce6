"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.schemas.models import (
    CatalogEntry,
    DownloadFailureCode,
    DownloadProgress,
    EngineKind,
    ModelStatus,
    RuntimeConfig,
    Transport,
)


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable error code.")
    detail: str = Field(description="What went wrong and what to do about it.")


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(description="Catalog id of the model to install.")
    transport: Transport = Field(
        default=Transport.HF_API,
        description="hf_api (snapshot_download), hf_cli (`hf download`), mirror (configured "
        "hub-compatible endpoint) or local (pre-staged directory).",
    )
    revision: str | None = Field(
        default=None,
        max_length=100,
        description="Revision to install; default: catalog pin or main.",
    )


class DownloadAccepted(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str
    download_id: uuid.UUID
    status: ModelStatus
    transport: Transport
    python_client_command: str = Field(
        description="The command an operator can run on a worker node to do the same download."
    )


class DownloadCancelAccepted(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str
    download_id: uuid.UUID
    status: Literal["cancelling"] = "cancelling"


class FailureView(BaseModel):
    code: DownloadFailureCode
    reason: str
    retryable: bool
    failed_at: datetime


class InstallationView(BaseModel):
    local_path: str
    revision_sha: str
    size_bytes: int
    verified_files: int
    installed_at: datetime
    transport: Transport


class ModelView(BaseModel):
    """A catalog entry with its status in the caller's workspace."""

    model_config = ConfigDict(protected_namespaces=())

    model: CatalogEntry
    source: Literal["catalog", "workspace"] = Field(
        description="catalog: shipped with studio-ai; "
        "workspace: added by an admin of this workspace."
    )
    status: ModelStatus
    download_id: uuid.UUID | None = None
    progress: DownloadProgress | None = Field(default=None, description="While downloading.")
    installation: InstallationView | None = Field(default=None, description="Once installed.")
    failure: FailureView | None = Field(default=None, description="When the last download failed.")
    runtime: RuntimeConfig | None = Field(default=None, description="Once installed.")
    cancel_requested: bool = False


class ModelList(BaseModel):
    models: list[ModelView]


class RuntimeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: EngineKind
    endpoint_url: str | None = Field(
        default=None, max_length=500, description="http(s) base URL of the TGI / vLLM server."
    )
    pool: str | None = Field(
        default=None, description="Worker pool; default: derived from the model id."
    )
    served_model: str | None = Field(
        default=None,
        max_length=200,
        description="Model name the TGI / vLLM server expects; default: the model id.",
    )
