"""ModelInstallation: a model's state in one workspace, and the rules for changing it.

Every change is a pure function from the current state to the next (None means "nothing to
change"). Events that arrive again, or that belong to an older download than the one the
state holds, change nothing, so replaying the models topics leaves the projection as it was.

The models events travel on several topics, so a projector rebuilding from offset 0 may see a
download's outcome before its request. Downloads of one model in one workspace never overlap
(a request is refused while one runs), so "newer" is decided by time: an outcome that happened
after the state's request belongs to a newer download and replaces it, and an outcome can
create the state on its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.model_ids import default_pool
from studio_ai.schemas.envelope import derived_event_id
from studio_ai.schemas.models import (
    DownloadFailureCode,
    DownloadProgress,
    EngineKind,
    Modality,
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadProgressed,
    ModelDownloadRequested,
    ModelInstalled,
    ModelStatus,
    RuntimeConfig,
    Transport,
)


class DownloadFailure(BaseModel):
    code: DownloadFailureCode
    reason: str
    retryable: bool
    failed_at: datetime


class ModelInstallation(BaseModel):
    """The model projection: one document per (workspace_id, model_id)."""

    model_config = ConfigDict(protected_namespaces=())

    workspace_id: str
    model_id: str
    status: ModelStatus = ModelStatus.AVAILABLE
    download_id: uuid.UUID | None = None
    transport: Transport | None = None
    requested_at: datetime | None = None
    requested_by: str | None = None
    progress: DownloadProgress | None = None
    local_path: str | None = None
    revision_sha: str | None = None
    size_bytes: int | None = None
    verified_files: int | None = None
    installed_at: datetime | None = None
    modality: Modality | None = None
    runtime: RuntimeConfig | None = None
    failure: DownloadFailure | None = None
    version: int = Field(
        default=0, description="Bumped on every change; guards concurrent writers."
    )


def _is_active(current: ModelInstallation | None, download_id: uuid.UUID) -> bool:
    return (
        current is not None
        and current.download_id == download_id
        and current.status is ModelStatus.DOWNLOADING
    )


def _outcome_base(
    current: ModelInstallation | None,
    outcome: ModelInstalled | ModelDownloadFailed | ModelDownloadCancelled,
    *,
    workspace_id: str,
    occurred_at: datetime,
) -> ModelInstallation | None:
    """The state an outcome applies to, or None if it must be ignored."""
    if current is None:
        return ModelInstallation(
            workspace_id=workspace_id,
            model_id=outcome.model_id,
            download_id=outcome.download_id,
            requested_at=occurred_at,
        )
    if current.download_id == outcome.download_id:
        return current if current.status is ModelStatus.DOWNLOADING else None
    if current.requested_at is None or occurred_at > current.requested_at:
        # An outcome of a download newer than the one held (seen first during a rebuild).
        return current.model_copy(
            update={"download_id": outcome.download_id, "requested_at": occurred_at}
        )
    return None


def _next(current: ModelInstallation, **changes: object) -> ModelInstallation:
    return current.model_copy(update={**changes, "version": current.version + 1})


def refuse_if_busy(current: ModelInstallation | None, model_id: str) -> None:
    """A model already downloading or installed gets no second download."""
    if current is None:
        return
    if current.status is ModelStatus.DOWNLOADING:
        percent = current.progress.percent if current.progress else 0.0
        raise Conflict(
            f"model {model_id!r} is already downloading ({percent:.1f}% done, download "
            f"{current.download_id}); follow it with GET /admin/models or cancel it with "
            f"DELETE /admin/models/{model_id}/download"
        )
    if current.status is ModelStatus.INSTALLED:
        raise Conflict(
            f"model {model_id!r} is already installed (revision {current.revision_sha} at "
            f"{current.local_path}); nothing to download"
        )


def start_download(
    current: ModelInstallation | None,
    request: ModelDownloadRequested,
    *,
    workspace_id: str,
    requested_at: datetime,
    requested_by: str,
) -> ModelInstallation | None:
    """State after a download request; None when the request is stale or already applied."""
    if current is not None:
        if current.download_id == request.download_id:
            return None
        if current.requested_at is not None and requested_at <= current.requested_at:
            return None
    base = current or ModelInstallation(workspace_id=workspace_id, model_id=request.model_id)
    return _next(
        base,
        status=ModelStatus.DOWNLOADING,
        download_id=request.download_id,
        transport=request.transport,
        requested_at=requested_at,
        requested_by=requested_by,
        progress=DownloadProgress(bytes_done=0, bytes_total=0, percent=0.0),
        failure=None,
        modality=request.modality,
    )


def apply_progress(
    current: ModelInstallation | None, event: ModelDownloadProgressed
) -> ModelInstallation | None:
    if current is None or not _is_active(current, event.download_id):
        return None
    previous = current.progress
    if previous is not None and (
        event.progress.bytes_done < previous.bytes_done
        or event.progress.model_dump() == previous.model_dump()
    ):
        return None
    return _next(current, progress=event.progress)


def apply_installed(
    current: ModelInstallation | None,
    event: ModelInstalled,
    *,
    workspace_id: str,
    occurred_at: datetime,
) -> ModelInstallation | None:
    base = _outcome_base(current, event, workspace_id=workspace_id, occurred_at=occurred_at)
    if base is None:
        return None
    current = base
    runtime = current.runtime or RuntimeConfig(
        engine=event.engine, endpoint_url=None, pool=default_pool(event.model_id)
    )
    return _next(
        current,
        status=ModelStatus.INSTALLED,
        progress=DownloadProgress(
            bytes_done=event.size_bytes,
            bytes_total=event.size_bytes,
            files_done=len(event.files),
            files_total=len(event.files),
            percent=100.0,
        ),
        local_path=event.local_path,
        revision_sha=event.revision_sha,
        size_bytes=event.size_bytes,
        verified_files=event.verified_files,
        installed_at=event.installed_at,
        transport=event.transport,
        modality=event.modality,
        runtime=runtime,
        failure=None,
    )


def apply_failed(
    current: ModelInstallation | None,
    event: ModelDownloadFailed,
    *,
    workspace_id: str,
    occurred_at: datetime,
) -> ModelInstallation | None:
    base = _outcome_base(current, event, workspace_id=workspace_id, occurred_at=occurred_at)
    if base is None:
        return None
    return _next(
        base,
        status=ModelStatus.FAILED,
        failure=DownloadFailure(
            code=event.code, reason=event.reason, retryable=event.retryable, failed_at=occurred_at
        ),
    )


def apply_cancelled(
    current: ModelInstallation | None,
    event: ModelDownloadCancelled,
    *,
    workspace_id: str,
    occurred_at: datetime,
) -> ModelInstallation | None:
    base = _outcome_base(current, event, workspace_id=workspace_id, occurred_at=occurred_at)
    if base is None:
        return None
    return _next(base, status=ModelStatus.AVAILABLE, progress=None)


def cancellation_event_id(download_id: uuid.UUID) -> uuid.UUID:
    """One id for the cancellation of a download, whoever publishes it (gateway or downloader)."""
    return derived_event_id(download_id, "models.download-cancelled")


def cancellable_download(current: ModelInstallation | None, model_id: str) -> uuid.UUID:
    """The download a cancel request stops; raises Conflict when nothing is downloading.

    Cancel requests are kept apart from this state (one insert-only record per download), so a
    cancel can never be lost to a concurrent progress update of the projection.
    """
    if current is None or current.status is not ModelStatus.DOWNLOADING:
        status = current.status.value if current else ModelStatus.AVAILABLE.value
        raise Conflict(
            f"model {model_id!r} is not downloading (status: {status}); nothing to cancel"
        )
    assert current.download_id is not None
    return current.download_id


def configure_runtime(
    current: ModelInstallation | None,
    model_id: str,
    *,
    engine: EngineKind,
    endpoint_url: str | None,
    pool: str | None,
    served_model: str | None = None,
) -> ModelInstallation:
    if current is None or current.status is not ModelStatus.INSTALLED:
        status = current.status.value if current else ModelStatus.AVAILABLE.value
        raise Conflict(
            f"model {model_id!r} is not installed (status: {status}); install it with "
            "POST /admin/models/download before configuring its runtime"
        )
    if engine in (EngineKind.TGI, EngineKind.VLLM) and not endpoint_url:
        raise InvalidInput(
            f"engine {engine.value!r} serves the model from a server: give endpoint_url, the "
            "base URL of its OpenAI-compatible API (e.g. http://tgi-llama:8080)"
        )
    runtime = RuntimeConfig(
        engine=engine,
        endpoint_url=endpoint_url,
        pool=pool or default_pool(model_id),
        served_model=served_model,
    )
    return _next(current, runtime=runtime)


def percent_done(bytes_done: int, bytes_total: int) -> float:
    if bytes_total <= 0:
        return 0.0
    return round(min(100.0, 100.0 * bytes_done / bytes_total), 2)
