"""Consumer group `model-projector`: folds the models.* events into model_installations."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.model_projector.on_download_cancelled import project_download_cancelled
from studio_ai.consumers.model_projector.on_download_failed import project_download_failed
from studio_ai.consumers.model_projector.on_download_progressed import (
    project_download_progressed,
)
from studio_ai.consumers.model_projector.on_download_requested import project_download_requested
from studio_ai.consumers.model_projector.on_model_installed import project_model_installed
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import (
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadProgressed,
    ModelDownloadRequested,
    ModelInstalled,
)
from studio_ai.schemas.topics import (
    MODEL_DOWNLOAD_CANCELLED,
    MODEL_DOWNLOAD_FAILED,
    MODEL_DOWNLOAD_PROGRESSED,
    MODEL_DOWNLOAD_REQUESTED,
    MODEL_INSTALLED,
)

GROUP = "model-projector"


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()
    store = deps.store
    nack = AckPolicy.NACK_ON_ERROR

    @router.subscriber(
        MODEL_DOWNLOAD_REQUESTED.name,
        group_id=group_id,
        ack_policy=nack,
        auto_offset_reset="earliest",
    )
    async def on_download_requested(event: Envelope[ModelDownloadRequested]) -> None:
        await project_download_requested(event, store)

    @router.subscriber(
        MODEL_DOWNLOAD_PROGRESSED.name,
        group_id=group_id,
        ack_policy=nack,
        auto_offset_reset="earliest",
    )
    async def on_download_progressed(event: Envelope[ModelDownloadProgressed]) -> None:
        await project_download_progressed(event, store)

    @router.subscriber(
        MODEL_INSTALLED.name, group_id=group_id, ack_policy=nack, auto_offset_reset="earliest"
    )
    async def on_model_installed(event: Envelope[ModelInstalled]) -> None:
        await project_model_installed(event, store)

    @router.subscriber(
        MODEL_DOWNLOAD_FAILED.name, group_id=group_id, ack_policy=nack, auto_offset_reset="earliest"
    )
    async def on_download_failed(event: Envelope[ModelDownloadFailed]) -> None:
        await project_download_failed(event, store)

    @router.subscriber(
        MODEL_DOWNLOAD_CANCELLED.name,
        group_id=group_id,
        ack_policy=nack,
        auto_offset_reset="earliest",
    )
    async def on_download_cancelled(event: Envelope[ModelDownloadCancelled]) -> None:
        await project_download_cancelled(event, store)

    return router
