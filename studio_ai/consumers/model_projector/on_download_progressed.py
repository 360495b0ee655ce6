"""models.download-progressed.v1 -> model_installations.progress.

Group: model-projector. Idempotency: applied only to the download in progress and only when
it moves forward, so duplicates and late arrivals change nothing.
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import apply_progress
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelDownloadProgressed


async def project_download_progressed(
    event: Envelope[ModelDownloadProgressed], store: MongoStore
) -> None:
    await store.update_installation(
        event.workspace_id,
        event.payload.model_id,
        lambda current: apply_progress(current, event.payload),
    )
