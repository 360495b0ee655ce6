"""The in-flight consumer against the real broker: many handlers at once, commits that never
pass an unfinished message."""

from __future__ import annotations

import asyncio
import random
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from studio_ai.runtime.inflight import InflightConsumer, Record
from tests.support.stack import kafka_bootstrap


async def _topic_with(messages: int, partitions: int = 3) -> str:
    topic = f"test.inflight.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap())
    await producer.start()
    try:
        for n in range(messages):
            await producer.send(topic, str(n).encode(), partition=n % partitions)
        await producer.flush()
    finally:
        await producer.stop()
    return topic


async def _committed(group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


def test_many_messages_in_flight_all_handled_once_and_committed() -> None:
    async def scenario() -> None:
        topic = await _topic_with(150)
        seen: list[int] = []
        running = peak = 0
        stop = asyncio.Event()

        async def handle(record: Record) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(random.uniform(0.005, 0.03))
            running -= 1
            seen.append(int(record.value or b"-1"))
            if len(seen) == 150:
                stop.set()

        group = f"test-inflight-{uuid.uuid4().hex[:8]}"
        consumer = InflightConsumer(
            bootstrap_servers=kafka_bootstrap(),
            topics=[topic],
            group_id=group,
            handler=handle,
            max_in_flight=16,
        )
        await asyncio.wait_for(consumer.run(stop), timeout=60)
        assert sorted(seen) == list(range(150))
        assert 1 < peak <= 16
        assert await _committed(group) == {TopicPartition(topic, p): 50 for p in range(3)}

    asyncio.run(scenario())


def test_an_unfinished_message_holds_back_its_partitions_commit() -> None:
    async def scenario() -> None:
        topic = await _topic_with(30, partitions=1)
        release = asyncio.Event()
        stop = asyncio.Event()
        done: set[int] = set()

        async def handle(record: Record) -> None:
            n = int(record.value or b"-1")
            if n == 5:
                await release.wait()
            done.add(n)

        group = f"test-inflight-{uuid.uuid4().hex[:8]}"
        consumer = InflightConsumer(
            bootstrap_servers=kafka_bootstrap(),
            topics=[topic],
            group_id=group,
            handler=handle,
            max_in_flight=64,
            commit_interval_s=0.05,
        )
        runner = asyncio.create_task(consumer.run(stop))
        for _ in range(200):
            if len(done) == 29:
                break
            await asyncio.sleep(0.05)
        assert len(done) == 29 and 5 not in done
        await asyncio.sleep(0.3)
        assert await _committed(group) == {TopicPartition(topic, 0): 5}
        release.set()
        for _ in range(100):
            if len(done) == 30:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(runner, timeout=30)
        assert await _committed(group) == {TopicPartition(topic, 0): 30}

    asyncio.run(scenario())
