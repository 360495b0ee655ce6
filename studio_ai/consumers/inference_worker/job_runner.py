"""ai.inference-requested.<pool>.v1 -> the engine -> ai.inference-progressed/-completed/-failed
and analytics.inference-metrics.v1.

Worker: `studio-ai worker inference --pool P`, many jobs in flight (runtime/inflight.py).
Exactly once: a job's outcome is recorded in the store by a unique insert before its events
are published; a redelivered job whose outcome is recorded publishes that same outcome again
(same event ids) instead of generating anew, so a crash or a replay never ends a job twice.
A job cancelled before it starts never reaches the engine; a running one has its engine call
cancelled (the HTTP stream is closed, or the request leaves the in-process batch queue).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from studio_ai.adapters.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    generate_with_retries,
)
from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.consumers.job_outcomes import (
    cancelled_outcome,
    ended_outcome,
    job_metrics,
    publish_recorded,
    settle_before_announcing,
)
from studio_ai.domain.errors import DomainError
from studio_ai.domain.extractive import Source
from studio_ai.domain.inference_cost import gpu_seconds_share
from studio_ai.domain.task_prompts import build_messages
from studio_ai.runtime.broker import EventPublisher
from studio_ai.runtime.delivery import TRANSIENT_ERRORS, failure_reason
from studio_ai.runtime.inflight import Record
from studio_ai.runtime.metrics import InferenceWorkerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    EngineName,
    InferenceCompleted,
    InferenceFailed,
    InferenceMetrics,
    InferenceProgressed,
    InferenceRequested,
    JobError,
    JobTimings,
    QuotaReservation,
    Usage,
)
from studio_ai.schemas.models import ModelTask
from studio_ai.schemas.topics import (
    INFERENCE_PROGRESSED,
)

log = logging.getLogger(__name__)

Request = Envelope[InferenceRequested]


class JobCancelled(Exception):
    """The job was cancelled while it ran."""


class JobRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        store: MongoStore,
        publisher: EventPublisher,
        engines: EngineCache,
        metrics: InferenceWorkerMetrics,
        pool: str,
        worker_id: str,
        dead_letter: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.engines = engines
        self.metrics = metrics
        self.pool = pool
        self.worker_id = worker_id
        self._dead_letter = dead_letter
        self.running: dict[uuid.UUID, asyncio.Task[GenerationResult]] = {}
        self.in_flight = 0
        self._cancel_requested: set[uuid.UUID] = set()
        self.stopping = False

    # --- entry point ------------------------------------------------------------------------

    async def handle(self, record: Record) -> None:
        try:
            event = Request.model_validate_json(record.value or b"")
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(record, failure_reason(exc))
            return
        if event.payload.pool != self.pool:
            await self._dead_letter(
                record,
                f"job for pool {event.payload.pool!r} arrived on the queue of pool {self.pool!r}",
            )
            return
        self.in_flight += 1
        self.metrics.in_flight.labels(self.pool).set(self.in_flight)
        try:
            await self._retrying_transient(event)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.labels(self.pool).set(self.in_flight)

    async def _retrying_transient(self, event: Request) -> None:
        delay = 0.5
        while True:
            try:
                await self._run(event)
                return
            except TRANSIENT_ERRORS as exc:
                if self.stopping:
                    raise
                log.error(
                    "store or broker unavailable; the job will be tried again",
                    extra={"job_id": str(event.payload.job_id), "error": repr(exc)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:
                if self.stopping:
                    raise  # shutting down: the job stays uncommitted and is delivered again
                # A bug must not leave the job queued forever nor hold its partition's commit:
                # the job fails visibly, and the log has the traceback.
                log.exception(
                    "job failed unexpectedly", extra={"job_id": str(event.payload.job_id)}
                )
                await self._fail_unexpected(event, exc)
                return

    # --- one job ----------------------------------------------------------------------------

    async def _run(self, event: Request) -> None:
        job = event.payload
        received = time.monotonic()
        recorded, cancelled = await asyncio.gather(
            self.store.jobs.get_outcome(job.job_id),
            self.store.jobs.cancelled_among([job.job_id]),
        )
        if recorded is not None:
            await self._publish_outcome(recorded, job.quota)
            return
        if cancelled:
            await self._record_cancelled(event)
            return
        waited_s = (datetime.now(UTC) - job.queued_at).total_seconds()
        if waited_s > self.settings.inference_job_ttl_s:
            await self._fail_without_running(
                event,
                EngineError(
                    "expired",
                    f"the job waited {waited_s / 60:.0f} min in the queue of pool {self.pool!r}, "
                    f"longer than {self.settings.inference_job_ttl_s / 60:.0f} min; submit it "
                    "again",
                    retryable=True,
                ),
            )
            return
        started_at = datetime.now(UTC)
        checked = time.monotonic()
        # "running" is published while the engine already works; it is awaited before the
        # outcome, so the job's events stay in order on their topics.
        announced = asyncio.create_task(self._publish_progress(event, 0, started_at, None))
        concurrent = len(self.running) + 1
        first_token_at: datetime | None = None
        error: EngineError | None = None
        result: GenerationResult | None = None
        began = time.monotonic()
        try:
            result = await self._generate(event, started_at)
            if result.first_token_s is not None:
                first_token_at = started_at + timedelta(seconds=result.first_token_s)
        except JobCancelled:
            await announced
            await self._record_cancelled(event)
            return
        except EngineError as exc:
            error = exc
        except BaseException:
            announced.cancel()
            raise
        await announced
        generation_s = time.monotonic() - began
        finished_at = datetime.now(UTC)
        outcome = self._outcome(
            event,
            result,
            error,
            JobTimings(
                queued_at=job.queued_at,
                started_at=started_at,
                first_token_at=first_token_at,
                finished_at=finished_at,
            ),
            # The extractive engine runs on the worker's CPU: no GPU time to bill.
            gpu_seconds=0.0
            if job.target.engine is EngineName.EXTRACTIVE
            else gpu_seconds_share(generation_s, concurrent),
        )
        generated = time.monotonic()
        await self._publish_outcome(
            await self.store.jobs.claim_outcome(job.job_id, outcome), job.quota
        )
        log.info(
            "job finished",
            extra={
                "job_id": str(job.job_id),
                "outcome": outcome["kind"],
                "queue_ms": round((started_at - job.queued_at).total_seconds() * 1000, 1),
                "checks_ms": round((checked - received) * 1000, 1),
                "start_event_ms": round((began - checked) * 1000, 1),
                "engine_ms": round(generation_s * 1000, 1),
                "record_and_publish_ms": round((time.monotonic() - generated) * 1000, 1),
            },
        )

    async def _generate(self, event: Request, started_at: datetime) -> GenerationResult:
        job = event.payload
        tokens = 0
        first_token_at: datetime | None = None
        last_published = time.monotonic()

        async def on_token(text: str) -> None:
            nonlocal tokens, first_token_at, last_published
            tokens += max(1, len(text.split())) if job.target.engine is EngineName.EXTRACTIVE else 1
            if first_token_at is None:
                first_token_at = datetime.now(UTC)
            now = time.monotonic()
            if now - last_published >= self.settings.inference_progress_interval_s:
                last_published = now
                await self._publish_progress(
                    event, min(tokens, job.max_tokens), started_at, first_token_at
                )

        engine = await self.engines.get(job.target, job.model_id)
        request = await self._request(event)
        call = asyncio.create_task(
            generate_with_retries(
                engine,
                request,
                attempts=self.settings.inference_attempts,
                backoff_s=self.settings.inference_backoff_s,
                on_token=on_token,
                on_retry=lambda _: self.metrics.engine_retries.labels(
                    job.model_id, self.pool
                ).inc(),
            )
        )
        self.running[job.job_id] = call
        try:
            return await call
        except asyncio.CancelledError:
            if job.job_id in self._cancel_requested:
                raise JobCancelled from None
            raise
        finally:
            self.running.pop(job.job_id, None)
            self._cancel_requested.discard(job.job_id)

    async def _request(self, event: Request) -> GenerationRequest:
        job = event.payload
        try:
            if job.task is ModelTask.IMAGE_TEXT:
                messages = await self._multimodal_messages(event)
            else:
                messages = build_messages(job.text_task, job.prompt, [d.text for d in job.context])
        except DomainError as exc:
            raise EngineError("invalid_input", exc.message, retryable=False) from exc
        return GenerationRequest(
            messages=messages,
            max_tokens=job.max_tokens,
            temperature=job.temperature,
            task=job.text_task,
            prompt=job.prompt,
            sources=tuple(Source(ref=d.ref, text=d.text) for d in job.context),
        )

    async def _multimodal_messages(self, event: Request) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for image in event.payload.images:
            found = await self.store.images.get_data(event.workspace_id, image.image_id)
            if found is None:
                raise EngineError(
                    "image_gone",
                    f"image {image.image_id} was deleted before the job ran; upload it again",
                    retryable=False,
                )
            _, data = found
            if hashlib.sha256(data).hexdigest() != image.sha256:
                raise EngineError(
                    "image_changed",
                    f"image {image.image_id} no longer matches the bytes the job was given",
                    retryable=False,
                )
            url = f"data:{image.media_type};base64,{base64.b64encode(data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        parts.append({"type": "text", "text": event.payload.prompt})
        return [{"role": "user", "content": parts}]

    # --- outcomes -----------------------------------------------------------------------------

    def _outcome(
        self,
        event: Request,
        result: GenerationResult | None,
        error: EngineError | None,
        timings: JobTimings,
        *,
        gpu_seconds: float,
    ) -> dict[str, Any]:
        job = event.payload
        usage = Usage(
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
        )
        terminal: Envelope[Any]
        if result is not None:
            terminal = event.caused(
                "ai.inference-completed",
                InferenceCompleted(
                    job_id=job.job_id,
                    text=result.text,
                    finish_reason=result.finish_reason,
                    usage=usage,
                    timings=timings,
                    model_id=job.model_id,
                    engine=job.target.engine,
                    pool=self.pool,
                    worker_id=self.worker_id,
                    gpu_seconds=round(gpu_seconds, 6),
                ),
            )
        else:
            assert error is not None
            terminal = event.caused(
                "ai.inference-failed",
                InferenceFailed(
                    job_id=job.job_id,
                    error=JobError(
                        code=error.code, message=error.message, retryable=error.retryable
                    ),
                    usage=usage,
                    timings=timings,
                    model_id=job.model_id,
                    engine=job.target.engine,
                    pool=self.pool,
                    worker_id=self.worker_id,
                ),
            )
        metrics = event.caused(
            "analytics.inference-metrics",
            self._metrics(event, usage, timings, result, gpu_seconds),
        )
        return ended_outcome(
            event, terminal, metrics, completed=result is not None, worker_id=self.worker_id
        )

    def _metrics(
        self,
        event: Request,
        usage: Usage,
        timings: JobTimings,
        result: GenerationResult | None,
        gpu_seconds: float,
    ) -> InferenceMetrics:
        job = event.payload
        return job_metrics(
            job_id=job.job_id,
            workspace_id=event.workspace_id,
            model_id=job.model_id,
            engine=job.target.engine,
            pool=self.pool,
            completed=result is not None,
            usage=usage,
            timings=timings,
            pricing=job.pricing,
            gpu_seconds=gpu_seconds,
            default_usd_per_gpu_hour=self.settings.default_gpu_usd_per_hour,
        )

    async def _fail_unexpected(self, event: Request, exc: Exception) -> None:
        error = EngineError(
            "internal_error",
            f"the worker failed on this job ({type(exc).__name__}); it was logged for the "
            "operators; submitting again may work",
            retryable=True,
        )
        await self._fail_without_running(event, error)

    async def _fail_without_running(self, event: Request, error: EngineError) -> None:
        job = event.payload
        now = datetime.now(UTC)
        timings = JobTimings(queued_at=job.queued_at, started_at=now, finished_at=now)
        outcome = self._outcome(event, None, error, timings, gpu_seconds=0.0)
        await self._publish_outcome(
            await self.store.jobs.claim_outcome(job.job_id, outcome), job.quota
        )

    async def _record_cancelled(self, event: Request) -> None:
        job = event.payload
        row = await self.store.jobs.get_cancellation(job.job_id)
        cancelled_at = row["requested_at"] if row else datetime.now(UTC)
        outcome = await self.store.jobs.claim_outcome(
            job.job_id,
            cancelled_outcome(event, job.job_id, cancelled_at, worker_id=self.worker_id),
        )
        await self._publish_outcome(outcome, job.quota)
        self.metrics.jobs.labels(job.model_id, self.pool, "cancelled").inc()
        log.info("job cancelled", extra={"job_id": str(job.job_id)})

    async def _publish_outcome(
        self, outcome: dict[str, Any], quota: QuotaReservation | None
    ) -> None:
        if not outcome.get("terminal"):
            return  # an outcome recorded by an older version: nothing to publish
        await settle_before_announcing(self.store, quota, outcome)
        record = await publish_recorded(self.publisher, outcome)
        if (
            record is not None
            and outcome.get("worker_id") == self.worker_id
            and not outcome.get("counted")
        ):
            outcome["counted"] = True
            self._observe(record)

    def _observe(self, record: InferenceMetrics) -> None:
        labels = (record.model_id, self.pool)
        self.metrics.jobs.labels(*labels, record.outcome.value).inc()
        self.metrics.queue_seconds.labels(*labels).observe(record.queue_ms / 1000)
        if record.ttft_ms is not None:
            self.metrics.ttft_seconds.labels(*labels).observe(record.ttft_ms / 1000)
        self.metrics.total_seconds.labels(*labels).observe(record.total_ms / 1000)
        self.metrics.tokens.labels(*labels, "prompt").inc(record.prompt_tokens)
        self.metrics.tokens.labels(*labels, "completion").inc(record.completion_tokens)
        self.metrics.cost_usd.labels(*labels).inc(record.cost)

    async def _publish_progress(
        self,
        event: Request,
        tokens: int,
        started_at: datetime,
        first_token_at: datetime | None,
    ) -> None:
        job = event.payload
        progressed = event.caused(
            "ai.inference-progressed",
            InferenceProgressed(
                job_id=job.job_id,
                tokens_generated=tokens,
                max_tokens=job.max_tokens,
                started_at=started_at,
                first_token_at=first_token_at,
            ),
            discriminator=f"{tokens}:{started_at.isoformat()}",
        )
        await self.publisher.publish(INFERENCE_PROGRESSED, progressed, key=str(job.job_id))

    # --- cancellation of running jobs ---------------------------------------------------------

    async def cancel_requested_jobs(self) -> None:
        """Cancel the engine calls of running jobs that a caller cancelled."""
        if not self.running:
            return
        for job_id in await self.store.jobs.cancelled_among(list(self.running)):
            task = self.running.get(job_id)
            if task is not None and not task.done():
                self._cancel_requested.add(job_id)
                task.cancel()
