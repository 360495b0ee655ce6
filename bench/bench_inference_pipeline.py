"""Inference worker concurrency and added latency, through the whole pipeline.

gateway -> Kafka -> inference worker (64 jobs in flight) -> OpenAI-compatible server with a
fixed latency -> Kafka -> job projector -> store, all real processes against the Kafka and
FerretDB that `make bench` starts.

1. Throughput: N jobs (default 1,000) are queued through the gateway while the pool has no
   worker; then the worker starts and drains them. Throughput is compared with the ideal of a
   worker that only waits on the server: in_flight / latency (64 / 0.5 s = 128 jobs/s).
   Target ratio >= 0.8. The end-to-end rate including submission is printed too.
2. Added latency: jobs submitted at a steady rate (default 100/s) with the worker running;
   for each job, (finished - queued) - server latency, from the worker's own timings (the
   analytics record), p50/p99. Target p99 <= 25 ms on a 2-core machine.

Prints its figures; asserts nothing. Run: `make bench`, or with the services up:
`.venv/bin/python bench/bench_inference_pipeline.py --jobs 1000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient, MongoClient

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.model_installation import ModelInstallation
from studio_ai.runtime.broker import ensure_topics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import (
    CatalogEntry,
    EngineKind,
    Modality,
    ModelStatus,
    ModelTask,
    RuntimeConfig,
    Transport,
)

STUDIO_AI = str(Path(sys.executable).with_name("studio-ai"))
MODEL_ID = "bench/served-model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.session = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-inference-"))
        self.gateway_port = free_port()
        self.chat_port = free_port()
        self.pool = f"bench-{self.session}"
        self.env = {
            **os.environ,
            "STUDIO_KAFKA_BOOTSTRAP": os.environ.get("STUDIO_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            "STUDIO_MONGO_URL": os.environ.get("STUDIO_MONGO_URL", "mongodb://127.0.0.1:27017"),
            "STUDIO_DEFAULT_PLAN": "enterprise",
            "STUDIO_MONGO_DB": f"bench_{self.session}",
            "STUDIO_CONSUMER_GROUP_PREFIX": f"bench-{self.session}.",
            "STUDIO_GATEWAY_PORT": str(self.gateway_port),
            "STUDIO_WORKER_HEARTBEAT_S": "0.5",
            "STUDIO_LOG_LEVEL": "WARNING",
            "STUDIO_INFERENCE_PROGRESS_INTERVAL_S": "5",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.last_report = 0.0
        self.records_seen = 0

    def start(self, name: str, *argv: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            list(argv), env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not come up; logs in {self.workdir}")

    async def skip_history(self) -> None:
        groups = {
            "job-projector": [
                "ai.inference-progressed.v1",
                "ai.inference-completed.v1",
                "ai.inference-failed.v1",
                "ai.inference-cancelled.v1",
            ],
            "metrics-recorder": ["analytics.inference-metrics.v1"],
        }
        await ensure_topics(Settings(kafka_bootstrap=self.env["STUDIO_KAFKA_BOOTSTRAP"]))
        for group, topics in groups.items():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.env["STUDIO_KAFKA_BOOTSTRAP"],
                group_id=self.env["STUDIO_CONSUMER_GROUP_PREFIX"] + group,
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                for topic in topics:
                    consumer._client.add_topic(topic)
                await consumer._client.force_metadata_update()
                partitions = [
                    TopicPartition(topic, p)
                    for topic in topics
                    for p in consumer.partitions_for_topic(topic) or ()
                ]
                consumer.assign(partitions)
                ends = await consumer.end_offsets(partitions)
                await consumer.commit({tp: offset for tp, offset in ends.items()})
            finally:
                await consumer.stop()

    def create_key(self) -> str:
        return (
            subprocess.run(
                [
                    STUDIO_AI,
                    "keys",
                    "create",
                    "--workspace",
                    f"bench-{self.session}",
                    "--user",
                    "b",
                ],
                env=self.env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    async def setup(self) -> str:
        key = await asyncio.to_thread(self.create_key)
        store = MongoStore.connect(self.env["STUDIO_MONGO_URL"], self.env["STUDIO_MONGO_DB"])
        workspace = f"bench-{self.session}"
        entry = CatalogEntry(
            model_id=f"{MODEL_ID}-{self.session}",
            display_name="benchmark model",
            hub_repo_id="bench/served-model",
            modality=Modality.TEXT,
            task=ModelTask.FAST_TEXT,
            default_engine=EngineKind.VLLM,
            approx_size_bytes=0,
            license="none",
        )
        await store.insert_catalog_entry(
            workspace, entry, created_by="bench", created_at=datetime.now(UTC)
        )
        # The install itself is benchmarked elsewhere (bench_install_latency.py): the model's
        # installation is written directly, pointing at the fixed-latency server.
        installed = ModelInstallation(
            workspace_id=workspace,
            model_id=entry.model_id,
            status=ModelStatus.INSTALLED,
            transport=Transport.MIRROR,
            local_path="/nonexistent",
            revision_sha="0" * 40,
            installed_at=datetime.now(UTC),
            modality=Modality.TEXT,
            runtime=RuntimeConfig(
                engine=EngineKind.VLLM,
                endpoint_url=f"http://127.0.0.1:{self.chat_port}",
                pool=self.pool,
            ),
        )
        await store.update_installation(workspace, entry.model_id, lambda _: installed)
        await store.close()
        self.model_id = entry.model_id
        return key

    async def keep_pool_live(self) -> None:
        store = MongoStore.connect(self.env["STUDIO_MONGO_URL"], self.env["STUDIO_MONGO_DB"])
        await store.jobs.heartbeat(
            "bench-placeholder", self.pool, at=datetime.now(UTC) + timedelta(days=1), in_flight=0
        )
        await store.close()

    def start_worker(self) -> None:
        self.env["STUDIO_LOG_LEVEL"] = "INFO"  # its "job finished" lines time each step
        self.start(
            "worker",
            STUDIO_AI,
            "worker",
            "inference",
            "--pool",
            self.pool,
            "--max-in-flight",
            str(self.args.in_flight),
            "--no-preload",
            "--metrics-port",
            str(free_port()),
        )
        self.env["STUDIO_LOG_LEVEL"] = "WARNING"

    async def submit(self, http: httpx.AsyncClient, n: int) -> str:
        response = await http.post(
            "/ai/generate-text",
            json={"model_id": self.model_id, "prompt": f"job {n}", "max_tokens": 4},
        )
        if response.status_code != 202:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text}")
        job_id: str = response.json()["job_id"]
        return job_id

    async def metrics_records(self, job_ids: set[str], wait_s: float) -> list[dict[str, Any]]:
        """The analytics records of `job_ids`, once all are stored. Polls a cheap count (the
        benchmark's database holds only its own records) so that waiting adds little load."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.env["STUDIO_MONGO_URL"])
        db = client[self.env["STUDIO_MONGO_DB"]]
        deadline = time.monotonic() + wait_s
        try:
            while time.monotonic() < deadline:
                stored = await db.inference_metrics.estimated_document_count()
                if stored >= self.records_seen + len(job_ids):
                    docs = [
                        d
                        async for d in db.inference_metrics.find({"job_id": {"$in": list(job_ids)}})
                    ]
                    if len({d["job_id"] for d in docs}) >= len(job_ids):
                        self.records_seen = stored
                        return docs
                if time.monotonic() - self.last_report > 5:
                    self.last_report = time.monotonic()
                    done = stored - self.records_seen
                    print(f"  … {done}/{len(job_ids)} jobs finished", file=sys.stderr)
                await asyncio.sleep(1.0)
        finally:
            await client.close()
        raise RuntimeError(f"only some jobs finished within {wait_s} s; logs in {self.workdir}")

    async def throughput(self, key: str) -> dict[str, float]:
        args = self.args
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.gateway_port}", headers=headers, timeout=60
        ) as http:
            # The jobs wait in the pool's queue while no worker runs: a heartbeat that stays
            # fresh keeps the pool "live" for the gateway, so the jobs do not fall back.
            await self.keep_pool_live()
            started = time.monotonic()
            job_ids: list[str] = []
            sem = asyncio.Semaphore(16)

            async def one(n: int) -> None:
                async with sem:
                    job_ids.append(await self.submit(http, n))

            await asyncio.gather(*(one(n) for n in range(args.jobs)))
            submit_s = time.monotonic() - started
        records_start = time.monotonic()
        self.start_worker()
        docs = await self.metrics_records(set(job_ids), wait_s=args.jobs)
        finished = [d["finished_at"] for d in docs]
        drain_s = (max(finished) - min(finished)).total_seconds()
        # The worker's drain: from its first finished job to its last, plus one latency (the
        # first wave of jobs was in flight for one latency before anything finished).
        drain_s += args.latency_ms / 1000
        wall_s = time.monotonic() - records_start
        rate = args.jobs / drain_s
        ideal = args.in_flight / (args.latency_ms / 1000)
        self.stop("worker")
        return {
            "submit_s": submit_s,
            "submit_rate": args.jobs / submit_s,
            "drain_s": drain_s,
            "drain_wall_s": wall_s,
            "rate": rate,
            "ideal": ideal,
            "ratio": rate / ideal,
        }

    async def added_latency(self, key: str) -> dict[str, float]:
        args = self.args
        self.start_worker()
        headers = {"Authorization": f"Bearer {key}"}
        job_ids: list[str] = []
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.gateway_port}", headers=headers, timeout=60
        ) as http:
            # Warm up: the worker has joined its group and answered once before measuring.
            await self.metrics_records({await self.submit(http, -1)}, wait_s=120)
            interval = 1 / args.rate
            begin = time.monotonic()
            tasks = []
            for n in range(args.latency_jobs):
                delay = begin + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.submit(http, n)))
            offered = args.latency_jobs / (time.monotonic() - begin)
            job_ids = list(await asyncio.gather(*tasks))
            accepted = args.latency_jobs / (time.monotonic() - begin)
        docs = await self.metrics_records(set(job_ids), wait_s=120)
        server_ms = args.latency_ms
        added_total = [d["total_ms"] - server_ms for d in docs]
        queue = [d["queue_ms"] for d in docs]
        worker = [d["total_ms"] - d["queue_ms"] - server_ms for d in docs]
        self.stop("worker")
        return {
            "offered_rate": offered,
            "accepted_rate": accepted,
            "added_p50_ms": percentile(added_total, 50),
            "added_p99_ms": percentile(added_total, 99),
            "queue_p50_ms": percentile(queue, 50),
            "queue_p99_ms": percentile(queue, 99),
            "worker_p50_ms": percentile(worker, 50),
            "worker_p99_ms": percentile(worker, 99),
            "mean_total_ms": statistics.fmean(d["total_ms"] for d in docs),
        }

    async def run(self) -> dict[str, Any]:
        args = self.args
        self.start(
            "chat",
            sys.executable,
            "-m",
            "studio_ai.devkit.chat_server",
            "--port",
            str(self.chat_port),
            "--latency-ms",
            str(args.latency_ms),
            "--tokens",
            "4",
        )
        self.wait_http(f"http://127.0.0.1:{self.chat_port}/health")
        self.start("gateway", STUDIO_AI, "gateway")
        # The topics are shared with earlier runs (and tests) on this broker: the projector's
        # new groups start at the topics' ends instead of replaying all of that history.
        await self.skip_history()
        self.start(
            "projector",
            STUDIO_AI,
            "worker",
            "run",
            "--group",
            "job-projector",
            "--group",
            "metrics-recorder",
            "--metrics-port",
            str(free_port()),
        )
        self.wait_http(f"http://127.0.0.1:{self.gateway_port}/healthz")
        key = await self.setup()
        results: dict[str, Any] = {"throughput": await self.throughput(key)}
        results["latency"] = await self.added_latency(key)
        return results

    def close(self, *, keep_logs: bool) -> None:
        for name in list(self.procs):
            self.stop(name)
        MongoClient(self.env["STUDIO_MONGO_URL"]).drop_database(self.env["STUDIO_MONGO_DB"])
        if keep_logs:
            print(f"logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs/s for the latency run")
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    bench = Bench(args)
    failed = True
    try:
        results = asyncio.run(bench.run())
        failed = False
    finally:
        bench.close(keep_logs=failed or args.keep_logs)
    t, lat = results["throughput"], results["latency"]
    print(
        f"inference pipeline: {args.jobs} jobs, {args.in_flight} in flight, "
        f"server latency {args.latency_ms} ms"
    )
    print(
        f"  submission through the gateway: {t['submit_rate']:.0f} jobs/s "
        f"({args.jobs} in {t['submit_s']:.1f} s)"
    )
    print(
        f"  worker drain: {t['rate']:.1f} jobs/s vs ideal {t['ideal']:.1f} jobs/s "
        f"(in_flight / latency): ratio {t['ratio']:.2f} (target >= 0.8)"
    )
    print(
        f"  at {lat['offered_rate']:.0f} jobs/s offered: added latency p50 "
        f"{lat['added_p50_ms']:.1f} ms, p99 {lat['added_p99_ms']:.1f} ms (target p99 <= 25 ms); "
        f"queue wait p50 {lat['queue_p50_ms']:.1f} ms, p99 {lat['queue_p99_ms']:.1f} ms"
    )
    print(
        f"  of which in the worker (besides the server): p50 {lat['worker_p50_ms']:.1f} ms, "
        f"p99 {lat['worker_p99_ms']:.1f} ms; the gateway accepted {lat['accepted_rate']:.0f} "
        "jobs/s"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
