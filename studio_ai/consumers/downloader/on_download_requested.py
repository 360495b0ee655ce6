"""models.download-requested.v1 -> download-progressed / installed / download-failed / -cancelled.

Group: downloader. Idempotency: the request runs only while the workspace's model projection
still names its download_id as the download in progress; every event it publishes has an id
derived from the request's, so a redelivered request that runs again publishes duplicates
that the projector ignores. A killed downloader resumes the files on disk when the
uncommitted request is delivered again.
"""

from __future__ import annotations

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.domain.model_installation import cancellation_event_id
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import (
    DownloadProgress,
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadProgressed,
    ModelDownloadRequested,
    ModelInstalled,
    ModelStatus,
)
from studio_ai.schemas.topics import (
    MODEL_DOWNLOAD_CANCELLED,
    MODEL_DOWNLOAD_FAILED,
    MODEL_DOWNLOAD_PROGRESSED,
    MODEL_INSTALLED,
)

OUTCOME_TOPICS = {
    ModelInstalled: (MODEL_INSTALLED, "models.installed"),
    ModelDownloadFailed: (MODEL_DOWNLOAD_FAILED, "models.download-failed"),
    ModelDownloadCancelled: (MODEL_DOWNLOAD_CANCELLED, "models.download-cancelled"),
}


async def download_model(event: Envelope[ModelDownloadRequested], deps: ConsumerDeps) -> None:
    request = event.payload

    async def still_wanted() -> bool:
        current = await deps.store.get_installation(event.workspace_id, request.model_id)
        return (
            current is not None
            and current.download_id == request.download_id
            and current.status is ModelStatus.DOWNLOADING
            and not await deps.store.is_cancelled(request.download_id)
        )

    async def cancel_requested() -> bool:
        return not await still_wanted()

    async def on_progress(progress: DownloadProgress) -> None:
        payload = ModelDownloadProgressed(
            download_id=request.download_id, model_id=request.model_id, progress=progress
        )
        progressed = event.caused(
            "models.download-progressed", payload, discriminator=f"{progress.bytes_done}"
        )
        await deps.publisher.publish(MODEL_DOWNLOAD_PROGRESSED, progressed, key=request.model_id)

    current = await deps.store.get_installation(event.workspace_id, request.model_id)
    if current is None or current.download_id != request.download_id:
        return
    if current.status is not ModelStatus.DOWNLOADING:
        return
    outcome: ModelInstalled | ModelDownloadFailed | ModelDownloadCancelled
    if await deps.store.is_cancelled(request.download_id):
        outcome = ModelDownloadCancelled(
            download_id=request.download_id, model_id=request.model_id, bytes_done=0
        )
    else:
        outcome = await deps.downloader.download(
            request, on_progress=on_progress, cancel_requested=cancel_requested
        )
    topic, event_type = OUTCOME_TOPICS[type(outcome)]
    # A cancellation has one id whoever publishes it (the gateway publishes it too).
    stable_id = (
        cancellation_event_id(request.download_id)
        if isinstance(outcome, ModelDownloadCancelled)
        else None
    )
    published = event.caused(event_type, outcome, event_id=stable_id)
    await deps.publisher.publish(topic, published, key=request.model_id)
