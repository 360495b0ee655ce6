"""The inference worker's per-job logic with in-memory stand-ins for the store and broker
(the real pipeline is covered by tests/integration/test_inference_*.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.consumers.inference_worker.job_runner import JobRunner
from studio_ai.domain.inference_job import cancellation_event_id
from studio_ai.runtime.metrics import InferenceWorkerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    ContextDocument,
    EngineName,
    EngineTarget,
    InferenceRequested,
    TextTask,
)
from studio_ai.schemas.models import ModelTask

POOL = "builtin"


@dataclass
class FakeJobs:
    outcomes: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    cancelled: set[uuid.UUID] = field(default_factory=set)

    async def get_outcome(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        return self.outcomes.get(job_id)

    async def get_cancellation(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        if job_id not in self.cancelled:
            return None
        return {"_id": str(job_id), "requested_at": datetime(2026, 1, 1, tzinfo=UTC)}

    async def cancelled_among(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {i for i in ids if i in self.cancelled}

    async def claim_outcome(self, job_id: uuid.UUID, outcome: dict[str, Any]) -> dict[str, Any]:
        return self.outcomes.setdefault(job_id, outcome)


@dataclass
class FakeStore:
    jobs: FakeJobs = field(default_factory=FakeJobs)


@dataclass
class FakePublisher:
    sent: list[tuple[str, Envelope[Any]]] = field(default_factory=list)

    async def publish(self, topic: Any, event: Envelope[Any], *, key: str) -> None:
        self.sent.append((topic.name, event))


def runner(store: FakeStore, publisher: FakePublisher, dead: list[str]) -> JobRunner:
    async def dead_letter(record: Any, reason: str) -> None:
        dead.append(reason)

    settings = Settings(inference_job_ttl_s=60)
    return JobRunner(
        settings=settings,
        store=store,  # type: ignore[arg-type]
        publisher=publisher,  # type: ignore[arg-type]
        engines=EngineCache(settings),
        metrics=InferenceWorkerMetrics.create(CollectorRegistry()),
        pool=POOL,
        worker_id="w-1",
        dead_letter=dead_letter,
    )


def request(*, queued_at: datetime | None = None) -> Envelope[InferenceRequested]:
    return Envelope[InferenceRequested](
        event_type="ai.inference-requested",
        correlation_id="c-1",
        workspace_id="ws",
        user_id="u",
        payload=InferenceRequested(
            job_id=uuid.uuid4(),
            task=ModelTask.FAST_TEXT,
            text_task=TextTask.SUMMARY,
            prompt="Summarise the trial.",
            context=[
                ContextDocument(
                    ref="note:n1",
                    text="Semaglutide reduced body weight by 15 percent. Nausea was common.",
                )
            ],
            max_tokens=64,
            requested_model_id="studio-ai/extractive",
            model_id="studio-ai/extractive",
            pool=POOL,
            target=EngineTarget(engine=EngineName.EXTRACTIVE),
            queued_at=queued_at or datetime.now(UTC),
        ),
    )


def record(value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=f"ai.inference-requested.{POOL}.v1",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def as_record(event: Envelope[InferenceRequested]) -> ConsumerRecord[bytes, bytes]:
    return record(event.model_dump_json().encode())


async def test_a_job_completes_once_and_a_redelivery_republishes_the_same_events() -> None:
    store, publisher, dead = FakeStore(), FakePublisher(), []
    work = runner(store, publisher, dead)
    event = request()
    await work.handle(as_record(event))
    first = [(t, e.event_id) for t, e in publisher.sent if not t.endswith("progressed.v1")]
    assert [t for t, _ in first] == ["ai.inference-completed.v1", "analytics.inference-metrics.v1"]
    completed = publisher.sent[-2][1] if publisher.sent[-2][0].endswith("completed.v1") else None
    assert completed is not None and "[note:n1]" in completed.payload.text  # type: ignore[attr-defined]

    publisher.sent.clear()
    await work.handle(as_record(event))  # delivered again after a crash
    again = [(t, e.event_id) for t, e in publisher.sent]
    assert sorted(again) == sorted(first)  # same events, same ids; nothing ran again
    assert dead == []


async def test_a_job_that_waited_past_its_ttl_fails_as_expired_without_running() -> None:
    store, publisher, dead = FakeStore(), FakePublisher(), []
    event = request(queued_at=datetime.now(UTC) - timedelta(minutes=5))
    await runner(store, publisher, dead).handle(as_record(event))
    failed = [e for t, e in publisher.sent if t == "ai.inference-failed.v1"]
    assert len(failed) == 1
    error = failed[0].payload.error  # type: ignore[attr-defined]
    assert error.code == "expired" and error.retryable
    assert not any(t.endswith("progressed.v1") for t, _ in publisher.sent)


async def test_a_cancelled_job_publishes_only_its_cancellation_and_bad_input_is_dead_lettered() -> (
    None
):
    store, publisher, dead = FakeStore(), FakePublisher(), []
    work = runner(store, publisher, dead)
    event = request()
    store.jobs.cancelled.add(event.payload.job_id)
    await work.handle(as_record(event))
    # Only the cancellation, with the gateway's event id, so the job ends even if the
    # gateway's own publish was lost; the engine never ran.
    assert [(t, e.event_id) for t, e in publisher.sent] == [
        ("ai.inference-cancelled.v1", cancellation_event_id(event.payload.job_id))
    ]
    assert store.jobs.outcomes[event.payload.job_id]["kind"] == "cancelled"

    await work.handle(record(b'{"event_type": "nonsense"}'))
    assert len(dead) == 1 and "does not match the event schema" in dead[0]

    other_pool = request()
    other_pool.payload.pool = "elsewhere"
    await work.handle(as_record(other_pool))
    assert "arrived on the queue of pool 'builtin'" in dead[1]
