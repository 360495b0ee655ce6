"""A Kafka consumer that keeps many messages in flight and commits only what is done.

FastStream's subscribers either handle one message at a time per consumer (ACK) or commit
before the work is done (ACK_FIRST with max_workers); neither gives "64 jobs in flight,
committed only when durable" (see DESIGN.md). This consumer does, with the parallel-consumer
pattern: up to `max_in_flight` handlers run at once, and for each partition it commits the
lowest offset that is not finished yet, so a crash redelivers exactly the unfinished messages
and those after them. Handlers must therefore be idempotent, and own their error policy
(dead-letter or publish a failed event): a handler that raises leaves its message uncommitted
until a restart or rebalance delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka.structs import OffsetAndMetadata, TopicPartition

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
Handler: TypeAlias = Callable[[Record], Awaitable[None]]


class OffsetTracker:
    """Offsets started and finished per partition, and what may be committed."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is not None:
            pending.discard(offset)

    def in_flight(self) -> int:
        return sum(len(offsets) for offsets in self._pending.values())

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit: every message below it is finished."""
        return {
            tp: min(self._pending[tp]) if self._pending.get(tp) else next_offset
            for tp, next_offset in self._next.items()
        }

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
            self._next.pop(tp, None)


class InflightConsumer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        handler: Handler,
        max_in_flight: int = 64,
        commit_interval_s: float = 0.2,
        max_poll_interval_ms: int = 15 * 60 * 1000,
        client_id: str = "studio-ai-inflight",
        drain_timeout_s: float = 30.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._topics = list(topics)
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._commit_interval_s = commit_interval_s
        self._drain_timeout_s = drain_timeout_s
        self._tracker = OffsetTracker()
        self._committed: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_in_flight,
            max_poll_interval_ms=max_poll_interval_ms,
            # Jobs wait for a free slot, not for a fuller fetch: answer fetches quickly.
            fetch_max_wait_ms=50,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; then let the handlers in flight finish and commit."""
        consumer = self._consumer
        consumer.subscribe(self._topics, listener=_CommitOnRevoke(self))
        await consumer.start()
        slots = asyncio.Semaphore(self._max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        committer = asyncio.create_task(self._commit_periodically(stop))
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        await slots.acquire()
                        self._tracker.started(tp, record.offset)
                        task = asyncio.create_task(self._handle(tp, record, slots))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
        finally:
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=self._drain_timeout_s)
                # Handlers still running are cancelled (their messages stay uncommitted and
                # are delivered again) before the resources they use are closed.
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            committer.cancel()
            await self.commit()
            await consumer.stop()

    async def _handle(self, tp: TopicPartition, record: Record, slots: asyncio.Semaphore) -> None:
        try:
            await self._handler(record)
        except Exception:
            log.critical(
                "handler raised; the message stays uncommitted until it is delivered again",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
                exc_info=True,
            )
            return
        finally:
            slots.release()
        self._tracker.finished(tp, record.offset)

    async def _commit_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self._commit_interval_s)
            await self.commit()

    async def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        wanted = set(partitions) if partitions is not None else None
        offsets = {
            tp: offset
            for tp, offset in self._tracker.committable().items()
            if (wanted is None or tp in wanted) and self._committed.get(tp) != offset
        }
        if not offsets:
            return
        await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        self._committed.update(offsets)

    async def _revoked(self, revoked: list[TopicPartition]) -> None:
        # Commit what is finished; messages still in flight on these partitions will be
        # delivered again to their new owner (handlers are idempotent).
        try:
            await self.commit(revoked)
        finally:
            self._tracker.forget(revoked)
            for tp in revoked:
                self._committed.pop(tp, None)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: InflightConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None
