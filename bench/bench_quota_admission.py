"""What exact quotas cost at admission: reservations through the quota ledger vs plain inserts.

Against the running MongoDB-wire server (`STUDIO_MONGO_URL`, default the local FerretDB of
`make run` / `make services-up`), in a scratch database. Three runs of N concurrent
admissions, each in the same process and moment so the machine's noise hits them alike:

- baseline: one unique insert per admission (what recording a job's reservation costs alone);
- ledger, contended: every admission in ONE workspace, from two store connections (two
  gateway processes), each reservation an append to the workspace's chain + its record;
- ledger, spread: the same over 16 workspaces.

Prints admissions/s, p50/p95 latency and the ratio of each ledger run to the baseline.

    .venv/bin/python bench/bench_quota_admission.py [--admissions 400] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.quotas import Exceeded, Metering, check, reservation
from studio_ai.schemas.plans import Quotas

METERED = Metering(tokens=True, gpu=True)
QUOTAS = Quotas(jobs_per_day=10**9, tokens_per_month=10**12, concurrent_jobs=10**9)


async def run(
    admissions: int, concurrency: int, admit: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await admit(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(admissions)))
    return admissions / (time.perf_counter() - started), latencies


async def reserve(store: MongoStore, workspace: str) -> None:
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    deltas = reservation(now, tokens=300, metering=METERED)

    def decide(totals: Mapping[str, float]) -> dict[str, float] | Exceeded:
        return check(totals, deltas, QUOTAS, now, metering=METERED) or deltas

    appended = await store.quotas.append(workspace, f"reserve:{job_id}", decide, now=now)
    assert not isinstance(appended, Exceeded)
    await store.quotas.record_reservation(
        job_id, workspace, deltas, seq=appended[0].seq, meter={"tokens": True, "gpu": True}
    )


async def main(admissions: int, concurrency: int) -> None:
    url = os.environ.get("STUDIO_MONGO_URL", "mongodb://127.0.0.1:27017")
    database = f"bench_quota_{uuid.uuid4().hex[:8]}"
    one = MongoStore.connect(url, database)
    two = MongoStore.connect(url, database)
    try:
        await one.ensure_indexes()

        async def baseline(i: int) -> None:
            await one.db.bench_plain.insert_one(
                {"_id": str(uuid.uuid4()), "workspace_id": "w", "deltas": {"jobs": 1}}
            )

        async def contended(i: int) -> None:
            await reserve(one if i % 2 else two, "contended")

        async def spread(i: int) -> None:
            await reserve(one if i % 2 else two, f"ws-{i % 16}")

        results = {}
        for name, admit in (("baseline", baseline), ("contended", contended), ("spread", spread)):
            results[name] = await run(admissions, concurrency, admit)
        totals = await one.quotas.totals("contended")
        day = "jobs:" + datetime.now(UTC).strftime("%Y-%m-%d")
        assert totals[day] == admissions, f"ledger counted {totals[day]}, not {admissions}"
    finally:
        await one.db.client.drop_database(database)
        await one.close()
        await two.close()

    base_rate = results["baseline"][0]
    print(f"{admissions} admissions, {concurrency} at a time, store {url}")
    print(f"{'run':<34}{'adm/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'vs baseline':>13}")
    labels = {
        "baseline": "baseline: one unique insert",
        "contended": "ledger: 1 workspace, 2 processes",
        "spread": "ledger: 16 workspaces, 2 procs",
    }
    for name, (rate, latencies) in results.items():
        p95 = statistics.quantiles(latencies, n=20)[18]
        print(
            f"{labels[name]:<34}{rate:>9.0f}{statistics.median(latencies):>9.1f}{p95:>9.1f}"
            f"{rate / base_rate:>12.2f}x"
        )
    print("ledger totals checked: every contended admission counted exactly once")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.admissions, args.concurrency))
