"""Concurrent writers of one model projection document never lose an update.

FerretDB 1.24 does not make a filtered update atomic (two concurrent compare-and-set writes
can both match), so the store serialises writers of a document within a process; this test
runs against the real MongoDB-wire server that `make test` starts.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import apply_installed, apply_progress, start_download
from studio_ai.schemas.models import (
    DownloadProgress,
    EngineKind,
    Modality,
    ModelDownloadProgressed,
    ModelDownloadRequested,
    ModelInstalled,
    ModelStatus,
    ModelTask,
    Transport,
)
from tests.support.stack import mongo_url


def test_progress_and_installed_written_at_once_end_installed() -> None:
    async def scenario() -> tuple[ModelStatus, int]:
        store = MongoStore.connect(mongo_url(), f"store_race_{uuid.uuid4().hex[:8]}")
        try:
            request = ModelDownloadRequested(
                download_id=uuid.uuid4(),
                model_id="org/m",
                hub_repo_id="org/m",
                revision=None,
                transport=Transport.HF_API,
                gated=False,
                local_dir="org--m",
                modality=Modality.TEXT,
                task=ModelTask.FAST_TEXT,
                default_engine=EngineKind.TRANSFORMERS,
            )
            now = datetime.now(UTC)
            await store.update_installation(
                "ws",
                "org/m",
                lambda c: start_download(
                    c, request, workspace_id="ws", requested_at=now, requested_by="u"
                ),
            )
            installed = ModelInstalled(
                download_id=request.download_id,
                model_id="org/m",
                local_path="/m",
                revision_sha="a" * 40,
                size_bytes=100,
                files=[],
                verified_files=0,
                transport=Transport.HF_API,
                modality=Modality.TEXT,
                engine=EngineKind.TRANSFORMERS,
                installed_at=now,
            )

            def progress(done: int) -> ModelDownloadProgressed:
                return ModelDownloadProgressed(
                    download_id=request.download_id,
                    model_id="org/m",
                    progress=DownloadProgress(bytes_done=done, bytes_total=100, percent=done),
                )

            writes = [
                store.update_installation(
                    "ws", "org/m", lambda c, d=d: apply_progress(c, progress(d))
                )
                for d in range(1, 40)
            ]
            writes.insert(
                20,
                store.update_installation(
                    "ws",
                    "org/m",
                    lambda c: apply_installed(c, installed, workspace_id="ws", occurred_at=now),
                ),
            )
            await asyncio.gather(*writes)
            final = await store.get_installation("ws", "org/m")
            assert final is not None
            await store.db.client.drop_database(store.db.name)
            return final.status, final.version
        finally:
            await store.close()

    for _ in range(5):
        status, version = asyncio.run(scenario())
        assert status is ModelStatus.INSTALLED
        assert version >= 2
