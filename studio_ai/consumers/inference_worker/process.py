"""An inference worker process: one or more pools, each its own consumer group
(`inference-<pool>`) reading only `ai.inference-requested.<pool>.v1` with many jobs in flight,
plus a heartbeat (the gateway's "pool has a live worker"), a cancel watcher, and /metrics and
/healthz on a side port. SIGINT/SIGTERM: stop taking jobs, let those in flight finish, commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from datetime import UTC, datetime

import uvicorn
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.consumers.inference_worker.engines import EngineCache
from studio_ai.consumers.inference_worker.job_runner import JobRunner
from studio_ai.domain.model_ids import validate_pool
from studio_ai.runtime.broker import EventPublisher, ensure_topics, new_broker
from studio_ai.runtime.delivery import dead_letter_headers
from studio_ai.runtime.inflight import InflightConsumer, Record
from studio_ai.runtime.metrics import InferenceWorkerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.inference import EngineName, EngineTarget
from studio_ai.schemas.topics import ALL_TOPICS, dead_letter_topic, inference_requested

log = logging.getLogger(__name__)

GROUP_PREFIX = "inference-"


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class InferenceWorker:
    def __init__(
        self,
        settings: Settings,
        pools: list[str],
        *,
        max_in_flight: int | None = None,
        preload: bool = True,
    ) -> None:
        for pool in pools:
            validate_pool(pool)
        self.settings = settings
        self.pools = list(dict.fromkeys(pools))
        self.max_in_flight = max_in_flight or settings.inference_max_in_flight
        self.preload = preload
        self.worker_id = worker_id()
        self.registry = CollectorRegistry()
        self.metrics = InferenceWorkerMetrics.create(self.registry)
        self.store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        self.broker: KafkaBroker = new_broker(
            settings,
            client_id=f"studio-ai-inference-{'+'.join(self.pools)}",
            registry=self.registry,
        )
        self.publisher = EventPublisher(self.broker)
        self.engines = EngineCache(settings)
        self.runners: dict[str, JobRunner] = {}
        self.consumers: dict[str, InflightConsumer] = {}
        self.running = False

    async def _dead_letter(self, record: Record, reason: str) -> None:
        await self.broker.publish(
            record.value or b"",
            topic=dead_letter_topic(record.topic),
            key=record.key,
            headers=dead_letter_headers(record, reason, "InvalidJob"),
        )
        log.warning(
            "job dead-lettered",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )

    async def run(self, stop: asyncio.Event, *, metrics_port: int | None = None) -> None:
        settings = self.settings
        await self.store.ensure_indexes()
        await ensure_topics(settings, [*ALL_TOPICS, *(inference_requested(p) for p in self.pools)])
        await self.broker.start()
        for pool in self.pools:
            runner = JobRunner(
                settings=settings,
                store=self.store,
                publisher=self.publisher,
                engines=self.engines,
                metrics=self.metrics,
                pool=pool,
                worker_id=self.worker_id,
                dead_letter=self._dead_letter,
            )
            self.runners[pool] = runner
            self.consumers[pool] = InflightConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                topics=[inference_requested(pool).name],
                group_id=settings.consumer_group_prefix + GROUP_PREFIX + pool,
                handler=runner.handle,
                max_in_flight=self.max_in_flight,
                client_id=f"studio-ai-inference-{pool}",
            )
        if self.preload:
            await self._preload()
        server = uvicorn.Server(
            uvicorn.Config(
                self._side_app(),
                host=settings.metrics_host,
                port=metrics_port if metrics_port is not None else settings.metrics_port,
                log_level="warning",
                lifespan="off",
            )
        )
        consumer_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(consumer.run(consumer_stop), name=f"consume-{pool}")
            for pool, consumer in self.consumers.items()
        ]
        helpers = [
            asyncio.create_task(self._heartbeat(stop)),
            asyncio.create_task(self._watch_cancellations(stop)),
            asyncio.create_task(server.serve()),
        ]
        self.running = True
        log.info(
            "inference worker running",
            extra={
                "pools": self.pools,
                "worker_id": self.worker_id,
                "max_in_flight": self.max_in_flight,
            },
        )
        try:
            done, _ = await asyncio.wait(
                [asyncio.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task in tasks and task.exception() is not None:
                    log.critical("a pool consumer stopped", exc_info=task.exception())
        finally:
            self.running = False
            for runner in self.runners.values():
                runner.stopping = True
            consumer_stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.should_exit = True
            for task in helpers[:2]:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for pool in self.pools:
                try:
                    await self.store.jobs.remove_heartbeat(f"{self.worker_id}:{pool}")
                except Exception:  # the store may be the reason we stop
                    log.warning("could not remove the heartbeat", exc_info=True)
            await self.engines.aclose()
            await self.broker.stop()
            await self.store.close()

    async def _preload(self) -> None:
        """Load the pools' installed models now, so the first job does not wait for it."""
        for pool in self.pools:
            for inst in await self.store.installations_in_pool(pool):
                if inst.runtime is None or inst.runtime.engine.value != "transformers":
                    continue
                target = EngineTarget(
                    engine=EngineName.TRANSFORMERS,
                    local_path=inst.local_path,
                    revision_sha=inst.revision_sha,
                )
                try:
                    await self.engines.get(target, inst.model_id)
                    log.info("model pinned", extra={"pool": pool, "model_id": inst.model_id})
                except Exception as exc:
                    log.warning(
                        "could not preload a model of the pool",
                        extra={"pool": pool, "model_id": inst.model_id, "error": str(exc)},
                    )

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for pool, runner in self.runners.items():
                try:
                    await self.store.jobs.heartbeat(
                        f"{self.worker_id}:{pool}",
                        pool,
                        at=datetime.now(UTC),
                        in_flight=runner.in_flight,
                    )
                except Exception as exc:
                    log.warning("heartbeat failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.worker_heartbeat_s)

    async def _watch_cancellations(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for runner in self.runners.values():
                try:
                    await runner.cancel_requested_jobs()
                except Exception as exc:
                    log.warning("cancel check failed", extra={"error": repr(exc)})
            await asyncio.sleep(0.3)

    def _side_app(self) -> Starlette:
        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "status": "ok" if self.running else "starting",
                    "pools": self.pools,
                    "worker_id": self.worker_id,
                    "in_flight": {p: r.in_flight for p, r in self.runners.items()},
                },
                status_code=200 if self.running else 503,
            )

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


async def run_inference_worker(
    settings: Settings,
    pools: list[str],
    *,
    max_in_flight: int | None = None,
    metrics_port: int | None = None,
    preload: bool = True,
) -> None:
    worker = InferenceWorker(settings, pools, max_in_flight=max_in_flight, preload=preload)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.run(stop, metrics_port=metrics_port)
