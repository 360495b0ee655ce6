"""The quota ledger on the real MongoDB-wire server: exact under concurrency across
processes, and each job settled once.

Two MongoStore objects stand for two gateway processes: each has its own connection, its own
in-process locks and its own cached head, so only the store's unique inserts keep them apart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.quotas import Exceeded, Metering, Outcome, check, reservation
from studio_ai.schemas.plans import Quotas
from tests.support.stack import mongo_url

METERED = Metering(tokens=True, gpu=True)


async def _admit(store: MongoStore, workspace: str, quotas: Quotas) -> bool:
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    deltas = reservation(now, tokens=100, metering=METERED)

    def decide(totals: Mapping[str, float]) -> dict[str, float] | Exceeded:
        return check(totals, deltas, quotas, now, metering=METERED) or deltas

    appended = await store.quotas.append(workspace, f"reserve:{job_id}", decide, now=now)
    if isinstance(appended, Exceeded):
        return False
    await store.quotas.record_reservation(
        job_id, workspace, deltas, seq=appended[0].seq, meter={"tokens": True, "gpu": True}
    )
    return True


def test_200_concurrent_reservations_from_two_processes_admit_exactly_50() -> None:
    async def scenario() -> tuple[int, dict[str, float], int]:
        database = f"ledger_{uuid.uuid4().hex[:8]}"
        one = MongoStore.connect(mongo_url(), database)
        two = MongoStore.connect(mongo_url(), database)
        try:
            quotas = Quotas(jobs_per_day=50)
            results = await asyncio.gather(
                *(_admit(one if i % 2 else two, "ws", quotas) for i in range(200))
            )
            totals = dict(await MongoStore.connect(mongo_url(), database).quotas.totals("ws"))
            entries = await one.db.quota_ledger.count_documents({})
            return sum(results), totals, entries
        finally:
            await one.close()
            await two.close()

    admitted, totals, entries = asyncio.run(scenario())
    assert admitted == 50
    day = "jobs:" + datetime.now(UTC).strftime("%Y-%m-%d")
    assert totals[day] == 50
    assert totals["concurrent"] == 50
    assert entries == 50  # refusals write nothing


def test_a_job_is_settled_once_whichever_events_and_processes_race() -> None:
    async def scenario() -> tuple[list[bool], dict[str, float]]:
        database = f"ledger_{uuid.uuid4().hex[:8]}"
        one = MongoStore.connect(mongo_url(), database)
        two = MongoStore.connect(mongo_url(), database)
        try:
            assert await _admit(one, "ws", Quotas())
            job_id = uuid.UUID((await one.db.quota_reservations.find_one({}))["_id"])
            settled = await asyncio.gather(
                one.quotas.settle_job(job_id, Outcome.COMPLETED, tokens_used=40, gpu_seconds=2),
                two.quotas.settle_job(job_id, Outcome.COMPLETED, tokens_used=40, gpu_seconds=2),
                one.quotas.settle_job(job_id, Outcome.CANCELLED),
                two.quotas.settle_job(job_id, Outcome.FAILED),
            )
            # A replay much later settles nothing again.
            settled.append(
                await MongoStore.connect(mongo_url(), database).quotas.settle_job(
                    job_id, Outcome.FAILED
                )
            )
            return settled, dict(await two.quotas.totals("ws"))
        finally:
            await one.close()
            await two.close()

    settled, totals = asyncio.run(scenario())
    assert settled.count(True) == 1
    month = datetime.now(UTC).strftime("%Y-%m")
    assert totals["concurrent"] == 0
    # Whichever outcome won, the tokens are either what the job used or all given back.
    assert totals[f"tokens:{month}"] in (40, 0)


def test_a_cancellation_after_the_job_completed_charges_what_the_job_used() -> None:
    """The meter settles from the job's recorded outcome, not from the event's topic."""
    from studio_ai.consumers.usage_meter.settle_outcome import settle_recorded_outcome
    from studio_ai.schemas.envelope import Envelope
    from studio_ai.schemas.inference import (
        EngineName,
        InferenceCancelled,
        InferenceCompleted,
        JobTimings,
        Usage,
    )

    async def scenario() -> tuple[dict[str, float], str]:
        database = f"ledger_{uuid.uuid4().hex[:8]}"
        store = MongoStore.connect(mongo_url(), database)
        try:
            assert await _admit(store, "ws", Quotas())
            job_id = uuid.UUID((await store.db.quota_reservations.find_one({}))["_id"])
            completed = Envelope[InferenceCompleted](
                event_type="ai.inference-completed",
                correlation_id="c",
                workspace_id="ws",
                user_id="u",
                payload=InferenceCompleted(
                    job_id=job_id,
                    text="done",
                    finish_reason="stop",
                    usage=Usage(prompt_tokens=30, completion_tokens=10),
                    timings=JobTimings(),
                    model_id="m",
                    engine=EngineName.VLLM,
                    pool="p",
                    worker_id="w",
                    gpu_seconds=1.5,
                ),
            )
            await store.jobs.claim_outcome(
                job_id,
                {
                    "kind": "completed",
                    "workspace_id": "ws",
                    "terminal": completed.model_dump_json(),
                },
            )
            cancelled = Envelope[InferenceCancelled](
                event_type="ai.inference-cancelled",
                correlation_id="c",
                workspace_id="ws",
                user_id="u",
                payload=InferenceCancelled(job_id=job_id, cancelled_at=datetime.now(UTC)),
            )
            # The cancellation is handled first, then the completion (topics race).
            await settle_recorded_outcome(store, cancelled)
            await settle_recorded_outcome(store, completed)
            outcome = await store.jobs.get_outcome(job_id)
            assert outcome is not None
            return dict(await store.quotas.totals("ws")), outcome["kind"]
        finally:
            await store.close()

    totals, kind = asyncio.run(scenario())
    month = datetime.now(UTC).strftime("%Y-%m")
    day = "jobs:" + datetime.now(UTC).strftime("%Y-%m-%d")
    assert kind == "completed"
    assert totals[f"tokens:{month}"] == 40 and totals[f"gpu_s:{month}"] == 1.5
    assert totals[day] == 1 and totals["concurrent"] == 0


def test_reconcile_gives_back_a_reservation_whose_job_was_never_queued() -> None:
    from studio_ai.producers.quota_reconcile import reconcile_workspace

    async def scenario() -> tuple[float, float, list[str]]:
        database = f"ledger_{uuid.uuid4().hex[:8]}"
        store = MongoStore.connect(mongo_url(), database)
        try:
            assert await _admit(store, "ws", Quotas())  # reserved, but no job was ever stored
            held = (await store.quotas.totals("ws"))["concurrent"]
            report = await reconcile_workspace(store, "ws")
            again = await reconcile_workspace(store, "ws")
            assert not again.released and not again.settled
            return held, (await store.quotas.totals("ws"))["concurrent"], report.released
        finally:
            await store.close()

    held, after, released = asyncio.run(scenario())
    assert (held, after, len(released)) == (1, 0, 1)
