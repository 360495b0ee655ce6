"""models.download-requested.v1 -> model_installations (status downloading).

Group: model-projector. The gateway records the request itself (so that a second request is
refused at once); this handler makes the projection rebuildable from the topic. Idempotency:
the request is applied only if it is newer than the download the projection holds.
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import start_download
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelDownloadRequested


async def project_download_requested(
    event: Envelope[ModelDownloadRequested], store: MongoStore
) -> None:
    await store.update_installation(
        event.workspace_id,
        event.payload.model_id,
        lambda current: start_download(
            current,
            event.payload,
            workspace_id=event.workspace_id,
            requested_at=event.occurred_at,
            requested_by=event.user_id,
        ),
    )
