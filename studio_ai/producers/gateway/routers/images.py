"""/images: upload an image for multimodal jobs (raw bytes as the body), read its metadata,
delete it. The bytes are never served back and no URL is ever fetched on a caller's behalf."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, NoReturn

from fastapi import APIRouter, Path, Query, Request, Response

from studio_ai.domain.errors import NotFound
from studio_ai.domain.identity import Caller
from studio_ai.domain.images import (
    DELETED_BY_CALLER,
    MEDIA_TYPES,
    ImageMeta,
    check_declared_type,
    format_size,
    media_type_of,
    new_image_meta,
    sniff_image,
    too_large,
    validate_image_ref,
    validate_retention,
)
from studio_ai.domain.plans import check_retention
from studio_ai.producers.gateway.context import AnyCaller, GatewayState, HttpProblem, State
from studio_ai.producers.governance import workspace_plan
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.images import ImageView

log = logging.getLogger(__name__)

router = APIRouter(prefix="/images", tags=["images"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    404: {"model": ErrorBody, "description": "No such image in the caller's workspace."},
    410: {"model": ErrorBody, "description": "The image was deleted; the detail says why."},
    422: {"model": ErrorBody, "description": "Invalid input; the detail says what to change."},
}
UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    413: {"model": ErrorBody, "description": "The image is over the size limit."},
    415: {"model": ErrorBody, "description": "Content-Type is not image/png, jpeg or webp."},
    422: {
        "model": ErrorBody,
        "description": "Not a PNG, JPEG or WebP image, truncated, too many pixels, not the "
        "type Content-Type names, or consent / retention_days that do not fit together.",
    },
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}

ImageId = Annotated[str, Path(description="The image_id POST /images returned.")]


@router.post(
    "",
    response_model=ImageView,
    status_code=201,
    responses=UPLOAD_ERRORS,
    openapi_extra={
        "requestBody": {"required": True, "content": dict.fromkeys(MEDIA_TYPES, _BINARY)}
    },
)
async def upload_image(
    request: Request,
    state: State,
    caller: AnyCaller,
    consent: Annotated[
        bool,
        Query(
            description="true: keep the image for retention_days. false: keep it only until "
            "the jobs that use it finish, then delete it."
        ),
    ],
    retention_days: Annotated[
        int | None,
        Query(description="Days to keep a consented image; only with consent=true."),
    ] = None,
) -> ImageView:
    """Upload one image as the raw request body, with Content-Type image/png, image/jpeg or
    image/webp; pass its image_id in a job's image_refs."""
    settings = state.settings
    declared = media_type_of(request.headers.get("content-type"))
    if declared is None:
        raise HttpProblem(
            415,
            "unsupported_media_type",
            f"send the image's bytes as the body with Content-Type image/png, image/jpeg or "
            f"image/webp (got {request.headers.get('content-type') or 'none'!r}); "
            "multipart forms and URLs are not accepted",
        )
    plan = await workspace_plan(state, caller.workspace_id)
    retention = validate_retention(
        consent,
        retention_days,
        settings.image_max_retention_days,
        default_days=max(
            1, min(settings.image_default_retention_days, plan.image_retention_max_days)
        ),
    )
    if retention is not None:
        check_retention(plan, retention)
    data = await _read_body(request, settings.image_max_bytes)
    media_type, width, height = await asyncio.to_thread(
        sniff_image,
        data,
        max_bytes=settings.image_max_bytes,
        max_side_px=settings.image_max_side_px,
    )
    check_declared_type(declared, media_type)
    meta = new_image_meta(
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        data=data,
        media_type=media_type,
        width=width,
        height=height,
        consent=consent,
        retention_days=retention,
        created_at=datetime.now(UTC),
    )
    await _audit(state, caller, AuditAction.IMAGE_UPLOADED, meta, request, at=meta.created_at)
    await state.store.images.insert(meta, data)
    return _view(meta)


@router.get("/{image_id}", response_model=ImageView, responses=ERRORS)
async def get_image(image_id: ImageId, state: State, caller: AnyCaller) -> ImageView:
    """An image's metadata (not its bytes)."""
    image_id = validate_image_ref(image_id)
    meta = await state.store.images.get_meta(caller.workspace_id, image_id)
    if meta is None:
        await _raise_missing(state, caller.workspace_id, image_id)
    return _view(meta)


@router.delete("/{image_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_image(
    image_id: ImageId, request: Request, state: State, caller: AnyCaller
) -> Response:
    """Delete an image now, even while jobs use it (they then fail with the reason)."""
    image_id = validate_image_ref(image_id)
    meta = await state.store.images.get_meta(caller.workspace_id, image_id)
    if meta is None:
        await _raise_missing(state, caller.workspace_id, image_id)
    await _audit(state, caller, AuditAction.IMAGE_DELETED, meta, request, reason=DELETED_BY_CALLER)
    if not await state.store.images.delete(caller.workspace_id, image_id):
        await _raise_missing(state, caller.workspace_id, image_id)
    return Response(status_code=204)


async def _audit(
    state: GatewayState,
    caller: Caller,
    action: AuditAction,
    meta: ImageMeta,
    request: Request,
    *,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    """Publish the action's audit record before acting, so an upload or deletion that happened
    always has one; its id is stable per image, so a retried deletion is recorded once."""
    try:
        await publish_audit(
            state.publisher,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            action=action,
            outcome=AuditOutcome.DONE,
            correlation_id=request.state.correlation_id,
            inputs_refs=[InputRef(ref=f"image:{meta.image_id}", sha256=meta.sha256)],
            reason=reason,
            audit_id=audit_id_for(action, meta.image_id),
            created_at=at,
        )
    except Exception as exc:
        log.exception("could not publish an image's audit record")
        raise HttpProblem(
            503,
            "broker_unavailable",
            f"nothing was changed: the audit record of this {action.value} could not be "
            f"published ({type(exc).__name__}); try again",
            {"Retry-After": "5"},
        ) from exc


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over the limit."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise HttpProblem(413, "too_large", too_large(int(length), max_bytes))
    # Content-Length may be absent (chunked) or wrong, so the limit holds while reading too.
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HttpProblem(
                413, "too_large", f"the image is over the limit of {format_size(max_bytes)}"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _raise_missing(state: GatewayState, workspace_id: str, image_id: str) -> NoReturn:
    tombstone = await state.store.images.get_tombstone(workspace_id, image_id)
    if tombstone is not None:
        raise HttpProblem(
            410,
            "gone",
            f"image {image_id} was deleted at {tombstone.deleted_at.isoformat()}: "
            f"{tombstone.reason}",
        )
    raise NotFound(
        f"no image {image_id} in workspace {workspace_id!r}; upload it with POST /images"
    )


def _view(meta: ImageMeta) -> ImageView:
    return ImageView(
        image_id=meta.image_id,
        media_type=meta.media_type,
        size_bytes=meta.size_bytes,
        sha256=meta.sha256,
        width=meta.width,
        height=meta.height,
        consent=meta.consent,
        retention_days=meta.retention_days,
        expires_at=meta.expires_at,
        created_at=meta.created_at,
    )
