"""The model projection's state changes: each event applies once, in order, to its download."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.model_installation import (
    ModelInstallation,
    apply_cancelled,
    apply_failed,
    apply_installed,
    apply_progress,
    cancellable_download,
    configure_runtime,
    refuse_if_busy,
    start_download,
)
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
    ModelTask,
    Transport,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
MODEL = "meta-llama/Llama-3.2-1B-Instruct"


def request(download_id: uuid.UUID | None = None) -> ModelDownloadRequested:
    return ModelDownloadRequested(
        download_id=download_id or uuid.uuid4(),
        model_id=MODEL,
        hub_repo_id=MODEL,
        revision=None,
        transport=Transport.HF_API,
        gated=True,
        local_dir="meta-llama--Llama-3.2-1B-Instruct",
        modality=Modality.TEXT,
        task=ModelTask.FAST_TEXT,
        default_engine=EngineKind.VLLM,
    )


def started(at: datetime = T0) -> tuple[ModelInstallation, ModelDownloadRequested]:
    req = request()
    state = start_download(None, req, workspace_id="ws", requested_at=at, requested_by="u")
    assert state is not None
    return state, req


def progress(req: ModelDownloadRequested, done: int, total: int = 100) -> ModelDownloadProgressed:
    return ModelDownloadProgressed(
        download_id=req.download_id,
        model_id=MODEL,
        progress=DownloadProgress(bytes_done=done, bytes_total=total, percent=100 * done / total),
    )


def installed(req: ModelDownloadRequested) -> ModelInstalled:
    return ModelInstalled(
        download_id=req.download_id,
        model_id=MODEL,
        local_path="/m/x",
        revision_sha="a" * 40,
        size_bytes=100,
        files=[],
        verified_files=3,
        transport=Transport.HF_API,
        modality=Modality.TEXT,
        engine=EngineKind.VLLM,
        installed_at=T0,
    )


def test_a_download_runs_from_request_to_installed() -> None:
    state, req = started()
    assert state.status is ModelStatus.DOWNLOADING
    state = apply_progress(state, progress(req, 40)) or state
    assert state.progress and state.progress.percent == 40
    done = apply_installed(state, installed(req), workspace_id="ws", occurred_at=T1)
    assert done is not None
    assert done.status is ModelStatus.INSTALLED
    assert done.revision_sha == "a" * 40
    assert done.runtime and done.runtime.engine is EngineKind.VLLM
    assert done.runtime.pool == "llama-3-2-1b-instruct"


def test_duplicates_late_and_foreign_events_change_nothing() -> None:
    state, req = started()
    state = apply_progress(state, progress(req, 60)) or state
    assert apply_progress(state, progress(req, 60)) is None
    assert apply_progress(state, progress(req, 30)) is None
    other = request()
    assert apply_progress(state, progress(other, 90)) is None
    earlier = T0 - timedelta(minutes=1)
    assert apply_installed(state, installed(other), workspace_id="ws", occurred_at=earlier) is None
    final = apply_installed(state, installed(req), workspace_id="ws", occurred_at=T1)
    assert final is not None
    assert apply_installed(final, installed(req), workspace_id="ws", occurred_at=T1) is None
    assert apply_progress(final, progress(req, 99)) is None
    assert start_download(final, req, workspace_id="ws", requested_at=T0, requested_by="u") is None


def test_an_older_request_replayed_after_a_newer_one_is_ignored() -> None:
    state, _ = started(T0 + timedelta(minutes=5))
    failed = ModelDownloadFailed(
        download_id=state.download_id,
        model_id=MODEL,
        code=DownloadFailureCode.REPO_NOT_FOUND,
        reason="x",
        retryable=False,
    )
    later = T0 + timedelta(minutes=6)
    state = apply_failed(state, failed, workspace_id="ws", occurred_at=later) or state
    assert (
        start_download(state, request(), workspace_id="ws", requested_at=T0, requested_by="u")
        is None
    )


def test_busy_models_refuse_a_second_download_with_their_status() -> None:
    state, req = started()
    with pytest.raises(Conflict, match="already downloading"):
        refuse_if_busy(state, MODEL)
    done = apply_installed(state, installed(req), workspace_id="ws", occurred_at=T1)
    with pytest.raises(Conflict, match="already installed"):
        refuse_if_busy(done, MODEL)
    refuse_if_busy(None, MODEL)


def test_failure_and_cancel() -> None:
    state, req = started()
    failed = apply_failed(
        state,
        ModelDownloadFailed(
            download_id=req.download_id,
            model_id=MODEL,
            code=DownloadFailureCode.GATED_NO_TOKEN,
            reason="gated",
            retryable=False,
        ),
        workspace_id="ws",
        occurred_at=T1,
    )
    assert failed and failed.status is ModelStatus.FAILED and failed.failure
    assert failed.failure.code is DownloadFailureCode.GATED_NO_TOKEN
    refuse_if_busy(failed, MODEL)

    state, req = started()
    assert cancellable_download(state, MODEL) == req.download_id
    back = apply_cancelled(
        state,
        ModelDownloadCancelled(download_id=req.download_id, model_id=MODEL, bytes_done=5),
        workspace_id="ws",
        occurred_at=T1,
    )
    assert back and back.status is ModelStatus.AVAILABLE
    with pytest.raises(Conflict, match="not downloading"):
        cancellable_download(back, MODEL)


def test_runtime_needs_an_installed_model_and_a_server_url_for_remote_engines() -> None:
    state, req = started()
    with pytest.raises(Conflict, match="not installed"):
        configure_runtime(state, MODEL, engine=EngineKind.VLLM, endpoint_url="http://v", pool=None)
    done = apply_installed(state, installed(req), workspace_id="ws", occurred_at=T1)
    with pytest.raises(InvalidInput, match="endpoint_url"):
        configure_runtime(done, MODEL, engine=EngineKind.TGI, endpoint_url=None, pool=None)
    configured = configure_runtime(
        done, MODEL, engine=EngineKind.TRANSFORMERS, endpoint_url=None, pool="small"
    )
    assert configured.runtime and configured.runtime.pool == "small"
    assert configured.version == (done.version if done else 0) + 1


def test_a_rebuild_that_sees_outcomes_before_requests_ends_in_the_same_state() -> None:
    first, req1 = started(T0)
    failed1 = ModelDownloadFailed(
        download_id=req1.download_id,
        model_id=MODEL,
        code=DownloadFailureCode.DISK_FULL,
        reason="full",
        retryable=True,
    )
    req2 = request()
    t_fail, t_req2, t_done = (T0 + timedelta(minutes=m) for m in (1, 2, 3))

    # In order, as the live projector sees them.
    live = apply_failed(first, failed1, workspace_id="ws", occurred_at=t_fail)
    live = start_download(live, req2, workspace_id="ws", requested_at=t_req2, requested_by="u")
    live = apply_installed(live, installed(req2), workspace_id="ws", occurred_at=t_done)
    assert live is not None and live.status is ModelStatus.INSTALLED

    # Outcomes first, requests last (separate topics read at different speeds).
    rebuilt = apply_installed(None, installed(req2), workspace_id="ws", occurred_at=t_done)
    for change in (
        lambda s: apply_failed(s, failed1, workspace_id="ws", occurred_at=t_fail),
        lambda s: start_download(s, req1, workspace_id="ws", requested_at=T0, requested_by="u"),
        lambda s: start_download(s, req2, workspace_id="ws", requested_at=t_req2, requested_by="u"),
    ):
        rebuilt = change(rebuilt) or rebuilt
    assert rebuilt is not None
    assert (rebuilt.status, rebuilt.download_id, rebuilt.revision_sha) == (
        live.status,
        live.download_id,
        live.revision_sha,
    )
