"""models.download-failed.v1 -> model_installations (status failed, with the reason).

Group: model-projector. Idempotency: applied only while its download is the one in progress.
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import apply_failed
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelDownloadFailed


async def project_download_failed(event: Envelope[ModelDownloadFailed], store: MongoStore) -> None:
    await store.update_installation(
        event.workspace_id,
        event.payload.model_id,
        lambda current: apply_failed(
            current, event.payload, workspace_id=event.workspace_id, occurred_at=event.occurred_at
        ),
    )
