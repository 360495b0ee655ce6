"""Rebuild a projection from its topics: run one consumer group in this process under a fresh
group id, which starts at the earliest offsets, until it has committed up to the end offsets
taken when it started; then stop.

Every group's effects are idempotent (see each handler's docstring), so a replay changes nothing
in an up-to-date projection and restores a lost or damaged one. Messages that failed before fail
again: they are counted in the result and logged, not dead-lettered a second time. Only the
projection groups may be replayed (PROJECTION_GROUPS).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from studio_ai.consumers.app import PROJECTION_GROUPS, create_consumer_app
from studio_ai.runtime.broker import ensure_topics
from studio_ai.runtime.settings import Settings
from studio_ai.runtime.topic_admin import (
    admin_client,
    caught_up,
    committed_offsets,
    current_ranges,
    group_has_commits,
)


class ReplayError(Exception):
    """The replay could not start, or did not catch up in time."""


@dataclass(frozen=True)
class TopicReplay:
    topic: str
    partitions: int
    records: int
    consumed: int
    dead_lettered: int


@dataclass(frozen=True)
class ReplayResult:
    group: str
    group_id: str
    seconds: float
    caught_up: bool
    topics: tuple[TopicReplay, ...]

    @property
    def consumed(self) -> int:
        return sum(t.consumed for t in self.topics)

    @property
    def lag(self) -> int:
        return sum(t.records - t.consumed for t in self.topics)


def fresh_group_id(settings: Settings, group: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{settings.consumer_group_prefix}{group}.replay-{stamp}-{uuid.uuid4().hex[:4]}"


async def replay_group(
    settings: Settings,
    group: str,
    *,
    group_id: str | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 0.5,
) -> ReplayResult:
    """Run `group` under `group_id` (default: a new `<prefix><group>.replay-<time>`) from
    offset 0 until it has caught up with the end offsets of its topics taken at start."""
    group_id = group_id or fresh_group_id(settings, group)
    bootstrap = settings.kafka_bootstrap
    if await group_has_commits(bootstrap, group_id):
        raise ReplayError(
            f"group id {group_id!r} already has committed offsets: it would resume from them "
            "instead of replaying from offset 0; choose a new --group-id"
        )
    if group not in PROJECTION_GROUPS:
        raise ReplayError(
            f"{group!r} is not a projection: replaying it would repeat its work (the downloader "
            "downloads, the insights worker calls LLMs and republishes metrics); replay one of "
            f"{', '.join(PROJECTION_GROUPS)}"
        )
    app = create_consumer_app(settings, [group], group_ids={group: group_id}, replaying=True)
    try:
        topics = sorted(
            {t for sub in app.broker.subscribers for t in getattr(sub, "topic_names", ())}
        )
        if not topics:
            raise ReplayError(f"group {group!r} subscribes to no topic: nothing to replay")
        await ensure_topics(settings)
        await app.store.ensure_indexes()
        targets = await current_ranges(bootstrap, topics)
        began = time.monotonic()
        await app.broker.start()
        done = False
        try:
            while time.monotonic() - began < timeout_s:
                async with admin_client(bootstrap) as admin:
                    committed = await committed_offsets(admin, group_id)
                if caught_up(targets, committed):
                    done = True
                    break
                await asyncio.sleep(poll_s)
        finally:
            await app.broker.stop()
        async with admin_client(bootstrap) as admin:
            committed = await committed_offsets(admin, group_id)
        seconds = time.monotonic() - began
    finally:
        await app.close()
    return ReplayResult(
        group=group,
        group_id=group_id,
        seconds=seconds,
        caught_up=done,
        topics=tuple(_topic_result(topic, targets, committed, app.registry) for topic in topics),
    )


def _topic_result(
    topic: str,
    targets: dict[TopicPartition, tuple[int, int]],
    committed: dict[TopicPartition, int],
    registry: CollectorRegistry,
) -> TopicReplay:
    mine = {tp: r for tp, r in targets.items() if tp.topic == topic}
    dead = registry.get_sample_value("studio_consumer_dead_lettered_total", {"topic": topic})
    return TopicReplay(
        topic=topic,
        partitions=len(mine),
        records=sum(end - start for start, end in mine.values()),
        consumed=sum(
            max(0, min(committed.get(tp, start), end) - start) for tp, (start, end) in mine.items()
        ),
        dead_lettered=int(dead or 0),
    )
