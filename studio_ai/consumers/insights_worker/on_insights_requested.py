"""research.insights-requested.v1 -> the insights (writers.py) ->
research.insight-generated.v1, then the job's ai.inference-completed.v1 (or -failed) and
analytics.inference-metrics.v1, like any inference job.

Group: insights-worker. Exactly once: the job's outcome, with its insights event, is recorded
by a unique insert (job_outcomes) before anything is published; a redelivered or replayed
request whose outcome is recorded publishes that same outcome again (same event ids), so the
session projector keeps each insight once. A job cancelled before it runs is not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.consumers.insights_worker.writers import (
    Written,
    choose_writer,
    remote_engine,
    write_insights,
)
from studio_ai.consumers.job_outcomes import (
    cancelled_outcome,
    ended_outcome,
    job_metrics,
    publish_recorded,
    settle_before_announcing,
)
from studio_ai.domain.errors import DomainError
from studio_ai.domain.inference_cost import gpu_seconds_share
from studio_ai.domain.research_export import session_markdown
from studio_ai.runtime.broker import EventPublisher
from studio_ai.runtime.delivery import TRANSIENT_ERRORS
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    EngineName,
    InferenceCompleted,
    InferenceFailed,
    InferenceProgressed,
    JobError,
    JobTimings,
    QuotaReservation,
    Usage,
)
from studio_ai.schemas.research import InsightsGenerated, InsightsRequested
from studio_ai.schemas.topics import INFERENCE_PROGRESSED, RESEARCH_INSIGHT_GENERATED

log = logging.getLogger(__name__)

Request = Envelope[InsightsRequested]

CANCEL_POLL_S = 1.0  # how soon a running job notices that a caller cancelled it


class JobCancelled(Exception):
    """A caller cancelled the job while its insights were being written."""


class InsightsRunner:
    def __init__(
        self, *, settings: Settings, store: MongoStore, publisher: EventPublisher, worker_id: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.worker_id = worker_id
        self.engines = EngineCache(settings)
        self.remote = remote_engine(settings)

    async def aclose(self) -> None:
        await self.engines.aclose()
        if self.remote is not None:
            await self.remote.aclose()

    async def handle(self, event: Request) -> None:
        job = event.payload
        recorded = await self.store.jobs.get_outcome(job.job_id)
        if recorded is not None:
            await self._publish(recorded, job.quota)
            return
        if await self.store.jobs.cancelled_among([job.job_id]):
            await self._record_cancelled(event)
            return
        started_at = datetime.now(UTC)
        await self.publisher.publish(
            INFERENCE_PROGRESSED,
            event.caused(
                "ai.inference-progressed",
                InferenceProgressed(
                    job_id=job.job_id,
                    tokens_generated=0,
                    max_tokens=job.max_tokens,
                    started_at=started_at,
                ),
            ),
            key=str(job.job_id),
        )
        try:
            written = await self._write_unless_cancelled(job)
        except JobCancelled:
            await self._record_cancelled(event)
            return
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            # A bug must not leave the job queued forever: it fails visibly, and the log has
            # the traceback.
            log.exception("insights job failed unexpectedly", extra={"job_id": str(job.job_id)})
            message = exc.message if isinstance(exc, DomainError) else type(exc).__name__
            outcome = self._failed(event, started_at, message)
        else:
            outcome = self._completed(event, started_at, written)
        await self._publish(await self.store.jobs.claim_outcome(job.job_id, outcome), job.quota)
        log.info(
            "insights job finished",
            extra={"job_id": str(job.job_id), "outcome": outcome["kind"]},
        )

    async def _write_unless_cancelled(self, job: InsightsRequested) -> Written:
        """The job's insights; JobCancelled if a caller cancels it meanwhile (its LLM calls
        are cancelled too, which closes their HTTP streams)."""

        async def write() -> Written:
            writer, reason = await choose_writer(
                job, remote=self.remote, engines=self.engines, settings=self.settings
            )
            return await write_insights(job, writer, reason=reason, settings=self.settings)

        task = asyncio.create_task(write())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_S)
                if done:
                    return task.result()
                if await self.store.jobs.cancelled_among([job.job_id]):
                    raise JobCancelled
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _record_cancelled(self, event: Request) -> None:
        job = event.payload
        row = await self.store.jobs.get_cancellation(job.job_id)
        cancelled_at = row["requested_at"] if row else datetime.now(UTC)
        await self._publish(
            await self.store.jobs.claim_outcome(
                job.job_id,
                cancelled_outcome(event, job.job_id, cancelled_at, worker_id=self.worker_id),
            ),
            job.quota,
        )
        log.info("insights job cancelled", extra={"job_id": str(job.job_id)})

    def _completed(self, event: Request, started_at: datetime, written: Written) -> dict[str, Any]:
        job = event.payload
        timings = JobTimings(
            queued_at=job.queued_at, started_at=started_at, finished_at=datetime.now(UTC)
        )
        on_gpu = written.engine not in (EngineName.EXTRACTIVE, EngineName.REMOTE_LLM)
        gpu_seconds = gpu_seconds_share(written.llm_seconds, 1) if on_gpu else 0.0
        cited = {c for insight in written.insights for c in insight.citations}
        insights = event.caused(
            "research.insight-generated",
            InsightsGenerated(
                job_id=job.job_id,
                session_id=job.session_id,
                insights=written.insights,
                generator=written.generator,
                engine=written.engine,
                model_id=written.model_id,
                fallback_reason=written.fallback_reason,
                usage=written.usage,
                generated_at=timings.finished_at or started_at,
                # What a reference needs; the abstracts stay out of the event.
                cited_sources=[
                    s.model_copy(update={"abstract": None})
                    for s in job.sources
                    if s.source_id in cited
                ],
            ),
        )
        terminal = event.caused(
            "ai.inference-completed",
            InferenceCompleted(
                job_id=job.job_id,
                text=session_markdown("Insights", written.insights, job.sources),
                finish_reason="stop",
                usage=written.usage,
                timings=timings,
                model_id=written.model_id,
                engine=written.engine,
                pool=job.pool,
                worker_id=self.worker_id,
                gpu_seconds=round(gpu_seconds, 6),
            ),
        )
        metrics = event.caused(
            "analytics.inference-metrics",
            job_metrics(
                job_id=job.job_id,
                workspace_id=event.workspace_id,
                model_id=written.model_id,
                engine=written.engine,
                pool=job.pool,
                completed=True,
                usage=written.usage,
                timings=timings,
                pricing=job.pricing if written.engine is job.target.engine else None,
                gpu_seconds=gpu_seconds,
                default_usd_per_gpu_hour=self.settings.default_gpu_usd_per_hour,
            ),
        )
        return ended_outcome(
            event,
            terminal,
            metrics,
            completed=True,
            worker_id=self.worker_id,
            insights=insights.model_dump_json(serialize_as_any=True),
        )

    def _failed(self, event: Request, started_at: datetime, cause: str) -> dict[str, Any]:
        job = event.payload
        timings = JobTimings(
            queued_at=job.queued_at, started_at=started_at, finished_at=datetime.now(UTC)
        )
        terminal = event.caused(
            "ai.inference-failed",
            InferenceFailed(
                job_id=job.job_id,
                error=JobError(
                    code="internal_error",
                    message=f"the insights worker failed on this job ({cause}); it was logged "
                    "for the operators; generating again may work",
                    retryable=True,
                ),
                timings=timings,
                model_id=job.model_id,
                engine=job.target.engine,
                pool=job.pool,
                worker_id=self.worker_id,
            ),
        )
        metrics = event.caused(
            "analytics.inference-metrics",
            job_metrics(
                job_id=job.job_id,
                workspace_id=event.workspace_id,
                model_id=job.model_id,
                engine=job.target.engine,
                pool=job.pool,
                completed=False,
                usage=Usage(),
                timings=timings,
                pricing=None,
                gpu_seconds=0.0,
                default_usd_per_gpu_hour=self.settings.default_gpu_usd_per_hour,
            ),
        )
        return ended_outcome(event, terminal, metrics, completed=False, worker_id=self.worker_id)

    async def _publish(self, outcome: dict[str, Any], quota: QuotaReservation | None) -> None:
        """The insights first, then the job's end: a caller who sees the job completed finds
        its insights on the session as soon as the projector has read them."""
        await settle_before_announcing(self.store, quota, outcome)
        if outcome.get("insights"):
            insights = Envelope[InsightsGenerated].model_validate_json(outcome["insights"])
            await self.publisher.publish(
                RESEARCH_INSIGHT_GENERATED, insights, key=insights.payload.session_id
            )
        await publish_recorded(self.publisher, outcome)


def worker_id_for(group_id: str) -> str:
    return f"{group_id}-{uuid.uuid4().hex[:8]}"
