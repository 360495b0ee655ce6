"""models.download-cancelled.v1 -> model_installations (back to available).

Group: model-projector. Idempotency: applied only while its download is the one in progress.
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import apply_cancelled
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelDownloadCancelled


async def project_download_cancelled(
    event: Envelope[ModelDownloadCancelled], store: MongoStore
) -> None:
    await store.update_installation(
        event.workspace_id,
        event.payload.model_id,
        lambda current: apply_cancelled(
            current, event.payload, workspace_id=event.workspace_id, occurred_at=event.occurred_at
        ),
    )
