"""Dead letters for operators: the DLQ topics, their records, and replaying them once.

A consumer parks a message it can never process in `<topic>.dlq` (runtime/delivery.py) with
the headers dlq_reason, dlq_error_type, dlq_failed_at and dlq_source_topic / _partition /
_offset, followed by the source record's own headers. After the cause is fixed, a replay
republishes the dead letter to its source topic with the same key, value and source headers
(plus `dlq_replayed_from: <dlq topic>:<partition>:<offset>`), so the consumers process it again.

Replay once: before a dead letter is published, its id `<dlq topic>:<partition>:<offset>` is
inserted into the store's `dlq_replays` collection, whose `_id` is unique. That insert is the
claim: a second replay, later or by another operator at the same moment, fails the insert and
skips the record. The claim starts as `publishing` and becomes `replayed` (with where the copy
landed) once the broker has acknowledged the copy (acks=all). A claim left at `publishing`
means a replay stopped between the two; it is reported, not published again, until the operator
has looked for the copy on the source topic (its `dlq_replayed_from` header) and replays it
with `force`. A duplicate delivery is harmless anyway: every consumer is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.runtime.topic_admin import (
    existing_topics,
    is_pool_topic,
    offset_ranges,
    offsets_reader,
    topic_partitions,
)
from studio_ai.schemas.topics import ALL_TOPICS, dead_letter_topic

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "dlq_"
REPLAYED_FROM_HEADER = "dlq_replayed_from"
LEDGER_COLLECTION = "dlq_replays"


class DeadLetterError(Exception):
    """An operator's request that cannot be served (no such topic, offset or record)."""


def dlq_topic_for(topic: str) -> str:
    """The DLQ of a source topic; a DLQ name is returned as it is."""
    return topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)


def source_of(dlq_topic: str) -> str:
    return dlq_topic[: -len(DLQ_SUFFIX)] if dlq_topic.endswith(DLQ_SUFFIX) else dlq_topic


def is_known_source(topic: str) -> bool:
    """A topic of this system that consumers read (so a dead letter may go back to it)."""
    return topic in {spec.name for spec in ALL_TOPICS} or is_pool_topic(topic)


@dataclass(frozen=True, order=True)
class Position:
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


def parse_position(text: str) -> Position:
    """`PARTITION:OFFSET`, e.g. `0:42`."""
    partition, sep, offset = text.strip().partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise DeadLetterError(f"{text!r} is not PARTITION:OFFSET (two whole numbers, e.g. 0:42)")
    return Position(int(partition), int(offset))


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def position(self) -> Position:
        return Position(self.partition, self.offset)

    @property
    def replay_id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def reason(self) -> str | None:
        return self.header("dlq_reason")

    @property
    def error_type(self) -> str | None:
        return self.header("dlq_error_type")

    @property
    def source_topic(self) -> str | None:
        return self.header("dlq_source_topic")

    @property
    def source_position(self) -> str | None:
        partition, offset = self.header("dlq_source_partition"), self.header("dlq_source_offset")
        return None if partition is None or offset is None else f"{partition}:{offset}"

    def source_headers(self) -> list[tuple[str, bytes]]:
        """The source record's own headers (the dlq_* ones are the dead letter's)."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]


@dataclass(frozen=True)
class DlqSummary:
    topic: str
    source: str
    exists: bool
    partitions: int
    records: int


async def list_dlq_topics(bootstrap: str) -> list[DlqSummary]:
    """Every registered topic's DLQ, and the inference pools' DLQs that exist, with the number
    of records each holds (end minus log start: what retention has not removed yet)."""
    existing = await existing_topics(bootstrap)
    names = [spec.dlq for spec in ALL_TOPICS]
    names += sorted(t for t in existing if t.endswith(DLQ_SUFFIX) and is_pool_topic(source_of(t)))
    present = [t for t in names if t in existing]
    partitions = await topic_partitions(bootstrap, present) if present else []
    ranges = await offset_ranges(bootstrap, partitions)
    summaries = []
    for name in names:
        mine = [(start, end) for tp, (start, end) in ranges.items() if tp.topic == name]
        summaries.append(
            DlqSummary(
                topic=name,
                source=source_of(name),
                exists=name in existing,
                partitions=len(mine),
                records=sum(end - start for start, end in mine),
            )
        )
    return summaries


async def read_dead_letters(
    bootstrap: str,
    dlq_topic: str,
    positions: Sequence[Position] | None = None,
    *,
    timeout_s: float = 30.0,
) -> list[DeadLetter]:
    """The records of `dlq_topic` (all that are there now, or those at `positions`), in
    partition and offset order. Raises DeadLetterError for a position without a record."""
    partitions = await topic_partitions(bootstrap, [dlq_topic])
    async with offsets_reader(bootstrap) as reader:
        reader.assign(partitions)
        starts = await reader.beginning_offsets(partitions)
        ends = await reader.end_offsets(partitions)
        if positions is None:
            wanted = {tp: (starts[tp], ends[tp]) for tp in partitions if ends[tp] > starts[tp]}
            letters = await _read_ranges(reader, wanted, timeout_s)
        else:
            letters = []
            for position in sorted(set(positions)):
                tp = TopicPartition(dlq_topic, position.partition)
                _check_position(dlq_topic, position, tp, starts, ends)
                found = await _read_ranges(
                    reader, {tp: (position.offset, position.offset + 1)}, timeout_s
                )
                if not found or found[0].offset != position.offset:
                    raise DeadLetterError(
                        f"no record at {position} in {dlq_topic} (removed by compaction, or a "
                        "transaction marker)"
                    )
                letters += found
    return sorted(letters, key=lambda d: (d.partition, d.offset))


def _check_position(
    topic: str,
    position: Position,
    tp: TopicPartition,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> None:
    if tp not in ends:
        raise DeadLetterError(
            f"{topic} has no partition {position.partition} (it has {len(ends)}: "
            f"0..{len(ends) - 1})"
        )
    start, end = starts[tp], ends[tp]
    if not start <= position.offset < end:
        held = f"offsets {start}..{end - 1}" if end > start else "no records"
        raise DeadLetterError(f"no record at {position} in {topic}: partition holds {held}")


async def _read_ranges(
    reader: Any, ranges: dict[TopicPartition, tuple[int, int]], timeout_s: float
) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    if not ranges:
        return letters
    for tp, (first, _) in ranges.items():
        reader.seek(tp, first)
    pending = set(ranges)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise DeadLetterError(
                f"timed out after {timeout_s:.0f} s reading "
                + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
            )
        batches = await reader.getmany(*pending, timeout_ms=500)
        for tp, records in batches.items():
            _, end = ranges[tp]
            letters += [_to_letter(r) for r in records if r.offset < end]
        for tp in list(pending):
            if await reader.position(tp) >= ranges[tp][1]:
                pending.discard(tp)
    return letters


def _to_letter(record: Any) -> DeadLetter:
    timestamp = (
        datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp >= 0 else None
    )
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=timestamp,
        key=record.key,
        value=record.value,
        headers=tuple((k, bytes(v)) for k, v in record.headers or ()),
    )


def replay_refusal(letter: DeadLetter, existing: Iterable[str]) -> str | None:
    """Why `letter` cannot go back to a source topic, or None when it can."""
    source = letter.source_topic
    if not source:
        return (
            "its source topic is unknown (no dlq_source_topic header): it was not written by "
            "a consumer of this system; republish it by hand if you know where it belongs"
        )
    if dlq_topic_for(source) != letter.topic:
        return (
            f"its dlq_source_topic {source!r} does not match the dead-letter topic it is in "
            f"({letter.topic}); refusing to publish it to another topic"
        )
    if not is_known_source(source):
        return f"its source topic {source!r} is not a topic of this system"
    if source not in set(existing):
        return f"its source topic {source!r} does not exist (run `studio-ai topics create`)"
    return None


class ReplayState(StrEnum):
    PUBLISHING = "publishing"
    REPLAYED = "replayed"


@dataclass(frozen=True)
class ReplayMark:
    replay_id: str
    state: ReplayState
    claimed_at: datetime
    replayed_at: datetime | None
    replayed_to: str | None

    def describe(self) -> str:
        if self.state is ReplayState.REPLAYED:
            when = self.replayed_at.isoformat() if self.replayed_at else "?"
            return f"already replayed at {when} (to {self.replayed_to})"
        return (
            f"a replay claimed it at {self.claimed_at.isoformat()} but did not confirm the "
            "publish; look for a record with header "
            f"{REPLAYED_FROM_HEADER}={self.replay_id} on the source topic, then use --force "
            "if it is not there"
        )


class ReplayLedger:
    """What was replayed, one document per dead letter (`_id`: its replay id)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._docs = db[LEDGER_COLLECTION]

    async def marks(self, ids: Iterable[str]) -> dict[str, ReplayMark]:
        wanted = list(ids)
        found: dict[str, ReplayMark] = {}
        for chunk in range(0, len(wanted), 500):
            async for doc in self._docs.find({"_id": {"$in": wanted[chunk : chunk + 500]}}):
                found[doc["_id"]] = _mark(doc)
        return found

    async def claim(self, letter: DeadLetter, *, force: bool = False) -> ReplayMark | None:
        """Claim `letter` for publishing: None when claimed, else the mark that was there."""
        doc = {
            "_id": letter.replay_id,
            "state": ReplayState.PUBLISHING.value,
            "dlq_topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "source_topic": letter.source_topic,
            "claimed_at": datetime.now(UTC),
            "replayed_at": None,
            "replayed_to": None,
        }
        if force:
            await self._docs.replace_one({"_id": letter.replay_id}, doc, upsert=True)
            return None
        try:
            await self._docs.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._docs.find_one({"_id": letter.replay_id})
            if existing is None:  # released meanwhile: one more try
                return await self.claim(letter)
            return _mark(existing)
        return None

    async def confirm(self, letter: DeadLetter, replayed_to: str) -> None:
        await self._docs.update_one(
            {"_id": letter.replay_id},
            {
                "$set": {
                    "state": ReplayState.REPLAYED.value,
                    "replayed_at": datetime.now(UTC),
                    "replayed_to": replayed_to,
                }
            },
        )


def _mark(doc: dict[str, Any]) -> ReplayMark:
    return ReplayMark(
        replay_id=doc["_id"],
        state=ReplayState(doc["state"]),
        claimed_at=_utc(doc["claimed_at"]),
        replayed_at=_utc(doc["replayed_at"]) if doc.get("replayed_at") else None,
        replayed_to=doc.get("replayed_to"),
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReplayInterrupted(Exception):
    """Publishing failed part-way; `done` holds the results before `letter`, whose claim is
    left at `publishing` (the next replay reports it instead of publishing it again)."""

    def __init__(self, done: list[ReplayResult], letter: DeadLetter, cause: BaseException):
        self.done = done
        self.letter = letter
        super().__init__(
            f"replay stopped at {letter.replay_id}: the broker did not acknowledge its copy "
            f"({cause}); {len(done)} dead letter(s) before it were handled"
        )


class ReplayOutcome(StrEnum):
    REPLAYED = "replayed"
    WOULD_REPLAY = "would replay"
    SKIPPED = "skipped"
    REFUSED = "refused"


@dataclass(frozen=True)
class ReplayResult:
    letter: DeadLetter
    outcome: ReplayOutcome
    detail: str


async def replay_dead_letters(
    bootstrap: str,
    letters: Sequence[DeadLetter],
    ledger: ReplayLedger,
    *,
    dry_run: bool = False,
    force: bool = False,
) -> list[ReplayResult]:
    """Republish each of `letters` to its source topic unless the ledger says it was replayed
    (or `force`); refuse those without a known, existing source topic. In order."""
    existing = await existing_topics(bootstrap)
    marks = await ledger.marks(letter.replay_id for letter in letters)
    results: list[ReplayResult] = []
    producer: AIOKafkaProducer | None = None
    try:
        for letter in letters:
            if refusal := replay_refusal(letter, existing):
                results.append(ReplayResult(letter, ReplayOutcome.REFUSED, refusal))
                continue
            mark = None if force else marks.get(letter.replay_id)
            if mark is not None:
                results.append(ReplayResult(letter, ReplayOutcome.SKIPPED, mark.describe()))
                continue
            source = letter.source_topic or ""
            again = letter.header(REPLAYED_FROM_HEADER)
            note = f" (it failed again after the replay of {again})" if again else ""
            if dry_run:
                results.append(
                    ReplayResult(letter, ReplayOutcome.WOULD_REPLAY, f"to {source}{note}")
                )
                continue
            if (mark := await ledger.claim(letter, force=force)) is not None:
                results.append(ReplayResult(letter, ReplayOutcome.SKIPPED, mark.describe()))
                continue
            if producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap,
                    client_id="studio-ai-dlq-replay",
                    acks="all",
                    enable_idempotence=True,
                )
                await producer.start()
            try:
                sent = await producer.send_and_wait(
                    source,
                    letter.value,
                    key=letter.key,
                    headers=[
                        *letter.source_headers(),
                        (REPLAYED_FROM_HEADER, letter.replay_id.encode()),
                    ],
                )
            except KafkaError as exc:
                raise ReplayInterrupted(results, letter, exc) from exc
            landed = f"{source} {sent.partition}:{sent.offset}"
            await ledger.confirm(letter, landed)
            results.append(ReplayResult(letter, ReplayOutcome.REPLAYED, f"to {landed}{note}"))
    finally:
        if producer is not None:
            await asyncio.shield(producer.stop())
    return results
