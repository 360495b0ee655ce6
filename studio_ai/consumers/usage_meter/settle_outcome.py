"""ai.inference-completed / -failed / -cancelled.v1 -> the quota ledger (group usage-meter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCancelled, InferenceCompleted


async def settle_recorded_outcome(store: MongoStore, event: Envelope[Any]) -> None:
    job_id = event.payload.job_id
    outcome = await store.jobs.get_outcome(job_id)
    if outcome is None and isinstance(event.payload, InferenceCancelled):
        # Nobody has ended the job yet: the cancellation becomes its outcome.
        outcome = await store.jobs.claim_outcome(
            job_id,
            {
                "kind": "cancelled",
                "workspace_id": event.workspace_id,
                "terminal": event.model_dump_json(),
                "worker_id": "usage-meter",
                "recorded_at": datetime.now(UTC),
            },
        )
    # Every completed or failed event is published after its outcome was recorded, so the
    # event itself stands in only for an outcome recorded by an older version.
    await store.quotas.settle_outcome(
        job_id, outcome or {"kind": _kind_of(event), "terminal": event.model_dump_json()}
    )


def _kind_of(event: Envelope[Any]) -> str:
    if isinstance(event.payload, InferenceCancelled):
        return "cancelled"
    return "completed" if isinstance(event.payload, InferenceCompleted) else "failed"
