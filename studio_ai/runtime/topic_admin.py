"""Kafka reads for operators: topics with their partitions and offsets, consumer groups'
committed offsets and lag, and whether a group has caught up with given end offsets.

Everything here only reads the cluster (metadata, log start/end offsets, committed offsets);
nothing creates, deletes or commits. Errors are aiokafka's `KafkaError`s, plus `UnknownTopics`
when a named topic does not exist.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
)
from aiokafka.structs import TopicPartition

from studio_ai.schemas.topics import ALL_TOPICS, INFERENCE_REQUESTED_PATTERN, topic_names

_POOL_TOPIC = re.compile(
    "^" + re.escape(INFERENCE_REQUESTED_PATTERN).replace(r"\{pool\}", r"[A-Za-z0-9._-]+") + "$"
)
# The group coordinator of a fresh cluster (or one that just failed over) is briefly missing.
_COORDINATOR_ERRORS = (
    GroupCoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    NotCoordinatorForGroupError,
)


class UnknownTopics(Exception):
    """Topics that were asked for by name do not exist in the cluster."""

    def __init__(self, missing: list[str], existing: Iterable[str]) -> None:
        self.missing = missing
        known = sorted(name for name in existing if not name.startswith("__"))
        close = [match for name in missing for match in difflib.get_close_matches(name, known, n=2)]
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        super().__init__(
            f"no such topic: {', '.join(missing)}{hint} (`studio-ai topics describe` lists "
            "this system's topics)"
        )


def is_pool_topic(name: str) -> bool:
    """Whether `name` is an inference pool's queue, ai.inference-requested.<pool>.v1."""
    return bool(_POOL_TOPIC.match(name))


def system_topics(existing: Iterable[str]) -> list[str]:
    """This system's topics: every registered topic and its DLQ, plus the inference pools'
    queues (and their DLQs) that exist."""
    names = topic_names(ALL_TOPICS)
    pools = sorted(
        name
        for name in existing
        if is_pool_topic(name) or (name.endswith(".dlq") and is_pool_topic(name[: -len(".dlq")]))
    )
    return names + [name for name in pools if name not in names]


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    start: int
    end: int

    @property
    def records(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: tuple[PartitionInfo, ...]

    @property
    def replication(self) -> int:
        return max((len(p.replicas) for p in self.partitions), default=0)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def under_replicated(self) -> bool:
        return any(len(p.isr) < len(p.replicas) for p in self.partitions)


@dataclass(frozen=True)
class GroupLag:
    """A consumer group's position on one topic. A partition it has not committed on counts
    from the log start (the groups of this system start new partitions at the earliest)."""

    group: str
    topic: str
    committed: Mapping[int, int | None]
    ends: Mapping[int, int]
    starts: Mapping[int, int] = field(default_factory=dict)

    def partition_lag(self, partition: int) -> int:
        end = self.ends[partition]
        done = self.committed.get(partition)
        if done is None:
            done = self.starts.get(partition, 0)
        return max(0, end - done)

    @property
    def lag(self) -> int:
        return sum(self.partition_lag(p) for p in self.ends)


@dataclass(frozen=True)
class TopicsReport:
    topics: tuple[TopicInfo, ...]
    missing: tuple[str, ...]
    groups: tuple[GroupLag, ...]


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="studio-ai-ops", request_timeout_ms=15000
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def offsets_reader(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group, for reading offsets and records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="studio-ai-ops",
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=15000,
    )
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def existing_topics(bootstrap: str) -> set[str]:
    async with admin_client(bootstrap) as admin:
        return set(await admin.list_topics())


async def _partitions(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, list[dict[str, Any]]]:
    described = await admin.describe_topics(topics) if topics else []
    return {
        t["topic"]: sorted(t["partitions"], key=lambda p: p["partition"])
        for t in described
        if t["error_code"] == 0
    }


async def offset_ranges(
    bootstrap: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, end) of each partition."""
    wanted = list(partitions)
    if not wanted:
        return {}
    async with offsets_reader(bootstrap) as reader:
        starts = await reader.beginning_offsets(wanted)
        ends = await reader.end_offsets(wanted)
    return {tp: (starts[tp], ends[tp]) for tp in wanted}


async def topic_partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """The partitions of `topics`; raises UnknownTopics for any that does not exist."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        if missing := [t for t in topics if t not in existing]:
            raise UnknownTopics(missing, existing)
        described = await _partitions(admin, topics)
    return [TopicPartition(t, p["partition"]) for t in topics for p in described.get(t, [])]


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, *, attempts: int = 10
) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions it never committed on are absent)."""
    for attempt in range(attempts):
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except _COORDINATOR_ERRORS:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
            continue
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    raise AssertionError("unreachable")


async def group_has_commits(bootstrap: str, group: str) -> bool:
    async with admin_client(bootstrap) as admin:
        return bool(await committed_offsets(admin, group))


async def group_caught_up(
    bootstrap: str,
    group: str,
    topics: list[str],
    *,
    targets: Mapping[TopicPartition, tuple[int, int]] | None = None,
) -> bool:
    """Whether `group` has committed up to the end of every non-empty partition of `topics`
    (or, with `targets`, up to those (log start, end) ranges, e.g. taken when a replay began)."""
    if targets is None:
        targets = await current_ranges(bootstrap, topics)
    async with admin_client(bootstrap) as admin:
        return caught_up(targets, await committed_offsets(admin, group))


async def current_ranges(
    bootstrap: str, topics: list[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, end) of every partition of `topics` now: what a group must reach."""
    return await offset_ranges(bootstrap, await topic_partitions(bootstrap, topics))


def caught_up(
    targets: Mapping[TopicPartition, tuple[int, int]], committed: Mapping[TopicPartition, int]
) -> bool:
    """Whether `committed` reaches the end of every (log start, end) range that has records."""
    return all(end <= start or committed.get(tp, -1) >= end for tp, (start, end) in targets.items())


async def describe(
    bootstrap: str, topics: list[str] | None = None, *, group_patterns: list[str] | None = None
) -> TopicsReport:
    """Partitions, replication, offsets and each consumer group's lag on `topics` (default:
    this system's topics that exist; those of them that do not are listed as missing).
    `group_patterns` (shell-style, e.g. `prod.*`) limits the groups shown."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        if topics:
            if unknown := [t for t in topics if t not in existing]:
                raise UnknownTopics(unknown, existing)
            wanted, missing = list(dict.fromkeys(topics)), []
        else:
            candidates = system_topics(existing)
            wanted = [t for t in candidates if t in existing]
            missing = [t for t in candidates if t not in existing]
        described = await _partitions(admin, wanted)
        groups = sorted(
            g[0]
            for g in await admin.list_consumer_groups()
            if not group_patterns or any(fnmatch.fnmatchcase(g[0], p) for p in group_patterns)
        )
        commits = await asyncio.gather(*(committed_offsets(admin, g) for g in groups))
    partitions = [TopicPartition(t, p["partition"]) for t in wanted for p in described.get(t, [])]
    ranges = await offset_ranges(bootstrap, partitions)
    infos = tuple(
        TopicInfo(
            name=t,
            partitions=tuple(
                PartitionInfo(
                    partition=p["partition"],
                    leader=p["leader"],
                    replicas=tuple(p["replicas"]),
                    isr=tuple(p["isr"]),
                    start=ranges[TopicPartition(t, p["partition"])][0],
                    end=ranges[TopicPartition(t, p["partition"])][1],
                )
                for p in described.get(t, [])
            ),
        )
        for t in wanted
    )
    lags: list[GroupLag] = []
    for group, committed in zip(groups, commits, strict=True):
        for info in infos:
            mine = {tp.partition: off for tp, off in committed.items() if tp.topic == info.name}
            if not mine:
                continue
            lags.append(
                GroupLag(
                    group=group,
                    topic=info.name,
                    committed={p.partition: mine.get(p.partition) for p in info.partitions},
                    ends={p.partition: p.end for p in info.partitions},
                    starts={p.partition: p.start for p in info.partitions},
                )
            )
    return TopicsReport(topics=infos, missing=tuple(missing), groups=tuple(lags))
