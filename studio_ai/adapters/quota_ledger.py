"""The quota ledger: each workspace's usage as an append-only chain of entries.

Entry n of a workspace has the `_id` `<workspace>#<n, zero-padded>` and holds the totals after
it. Appending entry n+1 is a unique insert, so of two writers that both read entry n only one
succeeds; the other reads the new head and decides again. Admission therefore never lets the
sum of reservations pass a limit, across any number of gateway processes, with single-document
inserts only: FerretDB 1.24 makes unique inserts atomic but not filtered updates or $inc
(DESIGN.md, delivery rules), and on MongoDB the same code holds.

Reservations (`quota_reservations`, by job id) remember what a job reserved; settlements
(`quota_settlements`, by job id) are claimed with a unique insert, so a job is settled once
whichever of its terminal events arrives first, and however often.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.domain.quotas import Counters, Exceeded, Metering, Outcome, roll, settlement
from studio_ai.runtime.delivery import TransientError
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import InferenceCompleted, QuotaReservation

log = logging.getLogger(__name__)

Document = dict[str, Any]
_ATTEMPTS = 200
# A settlement claimed by another process this recently is presumed still in progress.
_CLAIM_GRACE = timedelta(seconds=15)


class LedgerBusy(TransientError):
    """The ledger kept moving under this writer; try again."""


@dataclass
class Head:
    seq: int = 0
    totals: Counters = field(default_factory=dict)


def _entry_id(workspace_id: str, seq: int) -> str:
    return f"{workspace_id}#{seq:012d}"


class QuotaLedger:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._entries = db.quota_ledger
        self._reservations = db.quota_reservations
        self._settlements = db.quota_settlements
        self._heads: dict[str, Head] = {}
        # Writers of one workspace in this process take turns, so they do not race each other
        # for the same sequence number; other processes are kept apart by the unique insert.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def ensure_indexes(self) -> None:
        await self._reservations.create_index("workspace_id")

    # --- the chain ----------------------------------------------------------------------

    async def head(self, workspace_id: str) -> Head:
        """The newest entry's totals (probing forward from the last head this process saw)."""
        known = self._heads.get(workspace_id, Head())
        lo, step = known.seq, 1
        while await self._exists(workspace_id, lo + step):
            lo, step = lo + step, step * 2
        hi = lo + step  # lo exists (or is 0), hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self._exists(workspace_id, mid):
                lo = mid
            else:
                hi = mid
        if lo == known.seq:
            return known
        doc = await self._entries.find_one({"_id": _entry_id(workspace_id, lo)})
        head = Head(seq=lo, totals=dict(doc["totals"]) if doc else {})
        self._heads[workspace_id] = head
        return head

    async def _exists(self, workspace_id: str, seq: int) -> bool:
        if seq <= 0:
            return True
        return (
            await self._entries.find_one({"_id": _entry_id(workspace_id, seq)}, {"_id": 1})
            is not None
        )

    async def append(
        self,
        workspace_id: str,
        ref: str,
        decide: Callable[[Counters], Counters | Exceeded],
        *,
        now: datetime | None = None,
        once_after: int | None = None,
        check_first: bool = False,
    ) -> tuple[Head, Counters] | Exceeded | None:
        """Append the deltas `decide(totals)` returns, or return its refusal. Returns the new head
        and the deltas applied.

        With `once_after`, an entry with the same `ref` may only be appended once: whenever
        another writer got in first (and before the first try, with `check_first`), the entries
        after `once_after` are searched for `ref`, and None is returned if one is there. Two
        writers of the same ref then never both append: the second one's insert fails on the
        first one's sequence number, and its search finds the first one's entry."""
        lock = self._locks.get(workspace_id)
        if lock is None:
            lock = self._locks[workspace_id] = asyncio.Lock()
        async with lock:
            # Optimistic: the head this process saw last is usually still the head, and if it
            # is not, the insert after it fails and the new head is read.
            head = self._heads.get(workspace_id) or await self.head(workspace_id)
            for attempt in range(_ATTEMPTS):
                if (
                    once_after is not None
                    and (attempt or check_first)
                    and await self._find_ref(workspace_id, ref, after=once_after)
                ):
                    return None
                moment = now or datetime.now(UTC)
                decided = decide(head.totals)
                if isinstance(decided, Exceeded):
                    return decided
                totals = roll(head.totals, decided, moment)
                entry = {
                    "_id": _entry_id(workspace_id, head.seq + 1),
                    "workspace_id": workspace_id,
                    "seq": head.seq + 1,
                    "ref": ref,
                    "deltas": decided,
                    "totals": totals,
                    "at": moment,
                }
                try:
                    await self._entries.insert_one(entry)
                except DuplicateKeyError:
                    # Another process appended first: read the new head, decide again.
                    head = await self.head(workspace_id)
                    continue
                new_head = Head(seq=head.seq + 1, totals=totals)
                self._heads[workspace_id] = new_head
                return new_head, decided
        raise LedgerBusy(f"the quota ledger of workspace {workspace_id!r} kept changing; try again")

    # --- reservations and settlements -----------------------------------------------------

    async def record_reservation(
        self, job_id: uuid.UUID, workspace_id: str, deltas: Counters, *, seq: int, meter: Document
    ) -> None:
        await self._reservations.insert_one(
            {
                "_id": str(job_id),
                "workspace_id": workspace_id,
                "deltas": deltas,
                "seq": seq,
                "meter": meter,
                "at": datetime.now(UTC),
            }
        )

    async def unsettled_reservations(self, workspace_id: str) -> list[Document]:
        """The workspace's reservations that no settlement has claimed yet."""
        found = []
        async for doc in self._reservations.find({"workspace_id": workspace_id}):
            if await self._settlements.find_one({"_id": doc["_id"]}, {"_id": 1}) is None:
                found.append(doc)
        return found

    async def get_reservation(self, job_id: uuid.UUID) -> Document | None:
        return await self._reservations.find_one({"_id": str(job_id)})

    async def settle_job(
        self,
        job_id: uuid.UUID,
        outcome: Outcome,
        *,
        tokens_used: int = 0,
        gpu_seconds: float = 0.0,
        reservation: QuotaReservation | None = None,
    ) -> bool:
        """Turn a job's reservation into its charge (completed) or give it back (failed,
        cancelled); once per job, whichever terminal event comes first. `reservation` saves
        reading the stored one. False when the job reserved nothing (admitted before quotas)
        or was settled already."""
        reserved: Document | None = (
            {
                "workspace_id": reservation.workspace_id,
                "deltas": reservation.deltas,
                "meter": {"tokens": reservation.tokens_metered, "gpu": reservation.gpu_metered},
            }
            if reservation is not None
            else await self.get_reservation(job_id)
        )
        if reserved is None:
            return False
        workspace_id = reserved["workspace_id"]
        ref = f"settle:{job_id}"
        # Any head this process saw will do: the entry is appended after the claim, so it lies
        # after that head whichever it was.
        head = self._heads.get(workspace_id) or await self.head(workspace_id)
        claim = {
            "_id": str(job_id),
            "workspace_id": workspace_id,
            "outcome": outcome.value,
            "after_seq": head.seq,
            "claimed_at": datetime.now(UTC),
            "entry_seq": None,
        }
        takeover = False
        try:
            await self._settlements.insert_one(claim)
        except DuplicateKeyError:
            existing = await self._wait_for_settlement(job_id)
            if existing.get("entry_seq") is not None:
                return False  # settled already (a duplicate or a replayed terminal event)
            # Claimed long ago and never finished: the settling process died, or is slow. Its
            # entry, if any, lies after the head it saw; the append below checks for it.
            claim["after_seq"] = existing["after_seq"]
            takeover = True
        meter = reserved.get("meter") or {}
        deltas = settlement(
            reserved["deltas"],
            outcome,
            tokens_used=tokens_used,
            gpu_seconds=gpu_seconds,
            metering=Metering(tokens=bool(meter.get("tokens")), gpu=bool(meter.get("gpu"))),
        )
        appended = await self.append(
            workspace_id,
            ref,
            lambda _: deltas,
            once_after=claim["after_seq"],
            check_first=takeover,
        )
        assert not isinstance(appended, Exceeded)
        await self._settlements.update_one(
            {"_id": str(job_id)},
            {"$set": {"entry_seq": appended[0].seq if appended is not None else -1}},
        )
        return appended is not None

    async def settle_outcome(
        self,
        job_id: uuid.UUID,
        outcome: Document,
        *,
        reservation: QuotaReservation | None = None,
    ) -> bool:
        """Settle a job by its recorded outcome (a job_outcomes document): a completed job is
        charged what its terminal event says it used; any other outcome gives all back."""
        kind = outcome.get("kind")
        if kind == "completed" and outcome.get("terminal"):
            done = Envelope[InferenceCompleted].model_validate_json(outcome["terminal"]).payload
            return await self.settle_job(
                job_id,
                Outcome.COMPLETED,
                tokens_used=done.usage.prompt_tokens + done.usage.completion_tokens,
                gpu_seconds=done.gpu_seconds,
                reservation=reservation,
            )
        ended = Outcome.CANCELLED if kind == "cancelled" else Outcome.FAILED
        return await self.settle_job(job_id, ended, reservation=reservation)

    async def _wait_for_settlement(self, job_id: uuid.UUID) -> Document:
        """The settlement claim of `job_id`, once it is finished or too old to be in progress."""
        while True:
            existing = await self._settlements.find_one({"_id": str(job_id)})
            if existing is None:
                raise LedgerBusy(f"the settlement claim of job {job_id} vanished")
            claimed_at = existing["claimed_at"]
            if claimed_at.tzinfo is None:
                claimed_at = claimed_at.replace(tzinfo=UTC)
            if (
                existing.get("entry_seq") is not None
                or datetime.now(UTC) - claimed_at >= _CLAIM_GRACE
            ):
                return existing
            await asyncio.sleep(0.2)

    async def _find_ref(self, workspace_id: str, ref: str, *, after: int) -> bool:
        head = await self.head(workspace_id)
        for seq in range(after + 1, head.seq + 1):
            doc = await self._entries.find_one({"_id": _entry_id(workspace_id, seq)}, {"ref": 1})
            if doc is not None and doc.get("ref") == ref:
                return True
        return False

    async def totals(self, workspace_id: str) -> Mapping[str, float]:
        return (await self.head(workspace_id)).totals
