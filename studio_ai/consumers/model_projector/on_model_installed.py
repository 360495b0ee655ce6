"""models.installed.v1 -> model_installations (status installed: the ModelInstallation).

Group: model-projector. Idempotency: applied only while its download is the one in progress;
afterwards the projection is installed and a replayed event changes nothing.
"""

from __future__ import annotations

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import apply_installed
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import ModelInstalled


async def project_model_installed(event: Envelope[ModelInstalled], store: MongoStore) -> None:
    await store.update_installation(
        event.workspace_id,
        event.payload.model_id,
        lambda current: apply_installed(
            current, event.payload, workspace_id=event.workspace_id, occurred_at=event.occurred_at
        ),
    )
