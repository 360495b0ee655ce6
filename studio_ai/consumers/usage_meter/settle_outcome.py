"""ai.inference-completed / -failed / -cancelled.v1 -> the quota ledger (group usage-meter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.quotas import Outcome
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCancelled, InferenceCompleted

Document = dict[str, Any]


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
    kind = (outcome or {}).get("kind") or _kind_of(event)
    if kind == "completed":
        completed = _completed(outcome, event)
        if completed is not None:
            usage = completed.usage
            await store.quotas.settle_job(
                job_id,
                Outcome.COMPLETED,
                tokens_used=usage.prompt_tokens + usage.completion_tokens,
                gpu_seconds=completed.gpu_seconds,
            )
            return
    await store.quotas.settle_job(
        job_id, Outcome.CANCELLED if kind == "cancelled" else Outcome.FAILED
    )


def _kind_of(event: Envelope[Any]) -> str:
    if isinstance(event.payload, InferenceCompleted):
        return "completed"
    return "cancelled" if isinstance(event.payload, InferenceCancelled) else "failed"


def _completed(outcome: Document | None, event: Envelope[Any]) -> InferenceCompleted | None:
    if outcome is not None and outcome.get("terminal"):
        return Envelope[InferenceCompleted].model_validate_json(outcome["terminal"]).payload
    return event.payload if isinstance(event.payload, InferenceCompleted) else None
