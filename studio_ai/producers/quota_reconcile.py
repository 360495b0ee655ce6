"""Reconciling a workspace's quota reservations (`studio-ai workspaces reconcile`).

Every job's reservation is settled when the job ends, by its worker or the usage meter. A
reservation can still be left open when a process dies between reserving and queueing the
job, or when a job's terminal event is lost; its concurrency slot would then stay taken. This
settles each open reservation whose job has ended (by its recorded outcome), gives back those
whose job was never queued, and reports the ones still running.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.quotas import Outcome


@dataclass
class Reconciled:
    settled: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)


async def reconcile_workspace(store: MongoStore, workspace_id: str) -> Reconciled:
    report = Reconciled()
    for reservation in await store.quotas.unsettled_reservations(workspace_id):
        job_id = uuid.UUID(reservation["_id"])
        outcome = await store.jobs.get_outcome(job_id)
        if outcome is not None:
            await store.quotas.settle_outcome(job_id, outcome)
            report.settled.append(str(job_id))
        elif await store.jobs.get_job(job_id) is None:
            await store.quotas.settle_job(job_id, Outcome.FAILED)
            report.released.append(str(job_id))
        else:
            report.running.append(str(job_id))
    return report
