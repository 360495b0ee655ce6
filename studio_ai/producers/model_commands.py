"""Model installation commands behind the /admin/models API (and the CLI through it)."""

from __future__ import annotations

import logging
import shlex
import uuid
from datetime import UTC, datetime

from studio_ai.domain.catalog import CatalogSource, check_entry, find_entry
from studio_ai.domain.endpoints import check_endpoint_url
from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.identity import Caller
from studio_ai.domain.model_ids import (
    model_dir_name,
    validate_model_id,
    validate_pool,
    validate_revision,
)
from studio_ai.domain.model_installation import (
    ModelInstallation,
    apply_failed,
    cancellable_download,
    cancellation_event_id,
    configure_runtime,
    refuse_if_busy,
    start_download,
)
from studio_ai.domain.plans import check_model
from studio_ai.producers.gateway.context import GatewayState, HttpProblem
from studio_ai.producers.governance import workspace_plan
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.schemas.api import (
    DownloadAccepted,
    DownloadCancelAccepted,
    DownloadRequest,
    FailureView,
    InstallationView,
    ModelView,
    RuntimeUpdate,
)
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import (
    CatalogEntry,
    DownloadFailureCode,
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadRequested,
    ModelStatus,
    Transport,
)
from studio_ai.schemas.topics import MODEL_DOWNLOAD_CANCELLED, MODEL_DOWNLOAD_REQUESTED

log = logging.getLogger(__name__)


def python_client_command(
    state: GatewayState, request: DownloadRequest, entry: CatalogEntry, dir_name: str
) -> str:
    local_dir = state.settings.models_dir / dir_name
    parts = [
        "studio-ai",
        "models",
        "download",
        request.model_id,
        "--transport",
        request.transport.value,
        "--local-dir",
        str(local_dir),
    ]
    if request.revision or entry.revision:
        parts += ["--revision", request.revision or entry.revision or ""]
    if entry.hub_repo_id != entry.model_id:
        parts += ["--repo", entry.hub_repo_id]
    if entry.gated:
        parts += ["--gated"]
    return shlex.join(parts)


def check_transport_configured(state: GatewayState, transport: Transport) -> None:
    if transport is Transport.MIRROR and not state.settings.mirror_endpoint:
        raise InvalidInput(
            "transport 'mirror' is not configured on this deployment: an operator sets "
            "STUDIO_MIRROR_ENDPOINT to a hub-compatible mirror; or use transport 'hf_api'"
        )
    if transport is Transport.LOCAL and not state.settings.staging_dir:
        raise InvalidInput(
            "transport 'local' is not configured on this deployment: an operator sets "
            "STUDIO_STAGING_DIR to the folder of pre-staged models; or use transport 'hf_api'"
        )


async def workspace_catalog(
    state: GatewayState, caller: Caller
) -> tuple[list[CatalogEntry], list[CatalogEntry]]:
    return state.catalog, await state.store.list_catalog_entries(caller.workspace_id)


async def request_download(
    state: GatewayState, caller: Caller, request: DownloadRequest, correlation_id: str
) -> DownloadAccepted:
    validate_model_id(request.model_id)
    if request.revision is not None:
        validate_revision(request.revision)
    entry, _ = find_entry(request.model_id, *await workspace_catalog(state, caller))
    plan = await workspace_plan(state, caller.workspace_id)
    check_model(plan, state.plans, workspace_id=caller.workspace_id, model_id=entry.model_id)
    check_transport_configured(state, request.transport)
    dir_name = model_dir_name(entry.model_id)
    payload = ModelDownloadRequested(
        download_id=uuid.uuid4(),
        model_id=entry.model_id,
        hub_repo_id=entry.hub_repo_id,
        revision=request.revision or entry.revision,
        transport=request.transport,
        gated=entry.gated,
        local_dir=dir_name,
        modality=entry.modality,
        task=entry.task,
        default_engine=entry.default_engine,
    )
    event = Envelope[ModelDownloadRequested](
        event_type="models.download-requested",
        correlation_id=correlation_id,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        payload=payload,
    )

    def record(current: ModelInstallation | None) -> ModelInstallation | None:
        refuse_if_busy(current, entry.model_id)
        return start_download(
            current,
            payload,
            workspace_id=caller.workspace_id,
            requested_at=event.occurred_at,
            requested_by=caller.user_id,
        )

    await state.store.update_installation(caller.workspace_id, entry.model_id, record)
    try:
        await _audit_download_request(state, caller, event)
        await state.publisher.publish(MODEL_DOWNLOAD_REQUESTED, event, key=entry.model_id)
    except Exception as exc:
        log.exception("could not publish the download request")
        failed = ModelDownloadFailed(
            download_id=payload.download_id,
            model_id=entry.model_id,
            code=DownloadFailureCode.TRANSFER_FAILED,
            reason="the download could not be queued (the event broker did not accept it); "
            "ask again",
            retryable=True,
        )
        await state.store.update_installation(
            caller.workspace_id,
            entry.model_id,
            lambda current: apply_failed(
                current, failed, workspace_id=caller.workspace_id, occurred_at=datetime.now(UTC)
            ),
        )
        raise HttpProblem(
            503,
            "broker_unavailable",
            f"the download could not be queued: {type(exc).__name__}; try again",
        ) from exc
    return DownloadAccepted(
        model_id=entry.model_id,
        download_id=payload.download_id,
        status=ModelStatus.DOWNLOADING,
        transport=request.transport,
        python_client_command=python_client_command(state, request, entry, dir_name),
    )


async def cancel_download(
    state: GatewayState, caller: Caller, model_id: str, correlation_id: str
) -> DownloadCancelAccepted:
    validate_model_id(model_id)
    find_entry(model_id, *await workspace_catalog(state, caller))
    current = await state.store.get_installation(caller.workspace_id, model_id)
    download_id = cancellable_download(current, model_id)
    try:
        await publish_audit(
            state.publisher,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            action=AuditAction.MODEL_INSTALL_CANCELLED,
            outcome=AuditOutcome.ACCEPTED,
            correlation_id=correlation_id,
            model_id=model_id,
            inputs_refs=[
                InputRef(ref=f"model:{model_id}"),
                InputRef(ref=f"download:{download_id}"),
            ],
            audit_id=audit_id_for(AuditAction.MODEL_INSTALL_CANCELLED, str(download_id)),
        )
    except Exception as exc:
        log.exception("could not publish the cancellation's audit record")
        raise HttpProblem(
            503,
            "broker_unavailable",
            f"the cancellation could not be recorded: {type(exc).__name__}; try again",
            {"Retry-After": "5"},
        ) from exc
    await state.store.insert_cancellation(
        download_id,
        workspace_id=caller.workspace_id,
        model_id=model_id,
        requested_by=caller.user_id,
        requested_at=datetime.now(UTC),
    )
    # Published here too, so that a download no downloader holds (queued behind a long one, or
    # whose request was lost) is released at once; the downloader's own cancellation event
    # carries the same id, so consumers see one cancellation.
    cancelled = Envelope[ModelDownloadCancelled](
        event_id=cancellation_event_id(download_id),
        event_type="models.download-cancelled",
        correlation_id=correlation_id,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        payload=ModelDownloadCancelled(
            download_id=download_id,
            model_id=model_id,
            bytes_done=current.progress.bytes_done if current and current.progress else 0,
        ),
    )
    await state.publisher.publish(MODEL_DOWNLOAD_CANCELLED, cancelled, key=model_id)
    return DownloadCancelAccepted(model_id=model_id, download_id=download_id)


async def _audit_download_request(
    state: GatewayState, caller: Caller, event: Envelope[ModelDownloadRequested]
) -> None:
    request = event.payload
    refs = [
        InputRef(ref=f"model:{request.model_id}"),
        InputRef(ref=f"download:{request.download_id}"),
    ]
    if request.revision:
        refs.append(InputRef(ref=f"revision:{request.revision}"))
    await publish_audit(
        state.publisher,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        action=AuditAction.MODEL_INSTALL_REQUESTED,
        outcome=AuditOutcome.ACCEPTED,
        correlation_id=event.correlation_id,
        model_id=request.model_id,
        inputs_refs=refs,
        audit_id=audit_id_for(AuditAction.MODEL_INSTALL_REQUESTED, str(request.download_id)),
        created_at=event.occurred_at,
    )


async def add_catalog_entry(state: GatewayState, caller: Caller, entry: CatalogEntry) -> ModelView:
    check_entry(entry)
    if any(e.model_id == entry.model_id for e in state.catalog):
        raise Conflict(f"model {entry.model_id!r} is already in the shipped catalog")
    created = await state.store.insert_catalog_entry(
        caller.workspace_id, entry, created_by=caller.user_id, created_at=datetime.now(UTC)
    )
    state.cache.pop(f"catalog:{caller.workspace_id}", None)
    if not created:
        raise Conflict(
            f"model id {entry.model_id!r} is already taken; choose another id for this entry"
        )
    return model_view(entry, "workspace", None)


async def set_runtime(
    state: GatewayState, caller: Caller, model_id: str, update: RuntimeUpdate
) -> ModelView:
    validate_model_id(model_id)
    entry, source = find_entry(model_id, *await workspace_catalog(state, caller))
    if update.pool is not None:
        validate_pool(update.pool)
    if update.endpoint_url is not None:
        check_endpoint_url(update.endpoint_url, state.settings.inference_endpoint_hosts)
    updated = await state.store.update_installation(
        caller.workspace_id,
        model_id,
        lambda current: configure_runtime(
            current,
            model_id,
            engine=update.engine,
            endpoint_url=update.endpoint_url,
            pool=update.pool,
            served_model=update.served_model,
        ),
    )
    return model_view(entry, source, updated)


async def list_models(state: GatewayState, caller: Caller) -> list[ModelView]:
    catalog, own = await workspace_catalog(state, caller)
    installations = await state.store.list_installations(caller.workspace_id)
    cancelled = await state.store.cancelled_downloads(caller.workspace_id)
    sources: list[tuple[CatalogSource, list[CatalogEntry]]] = [
        ("catalog", catalog),
        ("workspace", own),
    ]
    views = []
    for source, entries in sources:
        for entry in entries:
            inst = installations.get(entry.model_id)
            is_cancelled = inst is not None and str(inst.download_id) in cancelled
            views.append(model_view(entry, source, inst, cancel_requested=is_cancelled))
    return views


async def get_model(state: GatewayState, caller: Caller, model_id: str) -> ModelView:
    validate_model_id(model_id)
    entry, source = find_entry(model_id, *await workspace_catalog(state, caller))
    inst = await state.store.get_installation(caller.workspace_id, model_id)
    cancelled = bool(inst and inst.download_id and await state.store.is_cancelled(inst.download_id))
    return model_view(entry, source, inst, cancel_requested=cancelled)


def model_view(
    entry: CatalogEntry,
    source: CatalogSource,
    inst: ModelInstallation | None,
    *,
    cancel_requested: bool = False,
) -> ModelView:
    if inst is None:
        return ModelView(model=entry, source=source, status=ModelStatus.AVAILABLE)
    installation = None
    if inst.status is ModelStatus.INSTALLED and inst.local_path and inst.installed_at:
        installation = InstallationView(
            local_path=inst.local_path,
            revision_sha=inst.revision_sha or "unknown",
            size_bytes=inst.size_bytes or 0,
            verified_files=inst.verified_files or 0,
            installed_at=inst.installed_at,
            transport=inst.transport or Transport.HF_API,
        )
    failure = None
    if inst.status is ModelStatus.FAILED and inst.failure:
        failure = FailureView(**inst.failure.model_dump())
    return ModelView(
        model=entry,
        source=source,
        status=inst.status,
        download_id=inst.download_id,
        progress=inst.progress if inst.status is ModelStatus.DOWNLOADING else None,
        installation=installation,
        failure=failure,
        runtime=inst.runtime if inst.status is ModelStatus.INSTALLED else None,
        cancel_requested=cancel_requested and inst.status is ModelStatus.DOWNLOADING,
    )
