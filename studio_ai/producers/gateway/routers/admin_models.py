"""/admin/models: the catalog with each model's status, downloads and runtime settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from studio_ai.producers import model_commands
from studio_ai.producers.gateway import sse
from studio_ai.producers.gateway.context import AdminCaller, State
from studio_ai.schemas.api import (
    DownloadAccepted,
    DownloadCancelAccepted,
    DownloadRequest,
    ErrorBody,
    ModelList,
    ModelView,
    RuntimeUpdate,
)
from studio_ai.schemas.models import CatalogEntry, ModelStatus

router = APIRouter(prefix="/admin/models", tags=["admin: models"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    403: {"model": ErrorBody, "description": "The key is not an admin key."},
    404: {"model": ErrorBody, "description": "No such model in the workspace's catalog."},
    409: {"model": ErrorBody, "description": "The model's current status does not allow it."},
    422: {"model": ErrorBody, "description": "Invalid input; the detail says what to change."},
}


@router.get("", response_model=ModelList, responses=ERRORS)
async def list_models(state: State, caller: AdminCaller) -> ModelList:
    """Every model of the workspace's catalog with its status and metadata."""
    return ModelList(models=await model_commands.list_models(state, caller))


@router.post("", response_model=ModelView, status_code=201, responses=ERRORS)
async def add_model(entry: CatalogEntry, state: State, caller: AdminCaller) -> ModelView:
    """Add a model to this workspace's catalog."""
    return await model_commands.add_catalog_entry(state, caller, entry)


@router.post("/download", response_model=DownloadAccepted, status_code=202, responses=ERRORS)
async def request_download(
    body: DownloadRequest, request: Request, state: State, caller: AdminCaller
) -> DownloadAccepted:
    """Start installing a model; follow it with GET /admin/models/{id}/download/events."""
    return await model_commands.request_download(state, caller, body, request.state.correlation_id)


@router.get("/{model_id:path}/download/events", responses=ERRORS)
async def download_events(
    model_id: str,
    state: State,
    caller: AdminCaller,
    poll_s: Annotated[float, Query(ge=0.1, le=10)] = 0.5,
) -> StreamingResponse:
    """Server-sent events: `progress` while downloading, then one `status` event at the end."""
    return sse.follow(
        await model_commands.get_model(state, caller, model_id),
        lambda: model_commands.get_model(state, caller, model_id),
        lambda view: view.status is not ModelStatus.DOWNLOADING,
        poll_s,
    )


@router.delete(
    "/{model_id:path}/download",
    response_model=DownloadCancelAccepted,
    status_code=202,
    responses=ERRORS,
)
async def cancel_download(
    model_id: str, request: Request, state: State, caller: AdminCaller
) -> DownloadCancelAccepted:
    """Stop a download in progress; the model goes back to `available`."""
    return await model_commands.cancel_download(
        state, caller, model_id, request.state.correlation_id
    )


@router.put("/{model_id:path}/runtime", response_model=ModelView, responses=ERRORS)
async def set_runtime(
    model_id: str, body: RuntimeUpdate, state: State, caller: AdminCaller
) -> ModelView:
    """Set the engine, endpoint URL and worker pool of an installed model."""
    return await model_commands.set_runtime(state, caller, model_id, body)


@router.get("/{model_id:path}", response_model=ModelView, responses=ERRORS)
async def get_model(model_id: str, state: State, caller: AdminCaller) -> ModelView:
    """One model with its status."""
    return await model_commands.get_model(state, caller, model_id)
