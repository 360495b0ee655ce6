"""Consumer group `downloader`: materialises requested models on this node's disk."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.downloader.on_download_requested import download_model
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelDownloadRequested
from studio_ai.schemas.topics import MODEL_DOWNLOAD_REQUESTED

GROUP = "downloader"
# A download can take hours; the consumer stays in its group meanwhile (the default 5 minutes
# would make Kafka hand the message to another member and start a second download).
MAX_POLL_INTERVAL_MS = 24 * 3600 * 1000


def build_router(deps: ConsumerDeps, *, group_id: str = GROUP) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        MODEL_DOWNLOAD_REQUESTED.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        max_poll_records=1,
        title="downloader:models.download-requested.v1",
        description="Downloads, verifies and installs a model; publishes progress and the outcome.",
    )
    async def on_download_requested(event: Envelope[ModelDownloadRequested]) -> None:
        await download_model(event, deps)

    return router
