"""Operators' commands against the real broker and store: dead letters (`dlq list / show /
replay`), `topics describe` with partitions and lag, and `replay GROUP` rebuilding a
projection from its topics."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from pymongo import MongoClient

from studio_ai.runtime.topic_admin import group_caught_up, topic_partitions
from studio_ai.schemas.topics import AUDIT_RECORDED
from tests.support.flows import new_workspace, read_topic
from tests.support.stack import STUDIO_AI, Stack, free_port, kafka_bootstrap, wait_until

AUDIT = AUDIT_RECORDED.name
AUDIT_DLQ = AUDIT_RECORDED.dlq

# An audit-recorder with a bug for one workspace's records (its store write raises), run as
# its own process: what a bad release looks like until the fixed one is deployed.
BUGGY_AUDIT_RECORDER = """
import asyncio, sys
from studio_ai.adapters.audit_store import AuditStore
from studio_ai.consumers.runner import run_consumers
from studio_ai.runtime.settings import Settings

metrics_port, group_id, workspace = int(sys.argv[1]), sys.argv[2], sys.argv[3]
insert = AuditStore.insert

async def buggy_insert(self, record):
    if record.workspace_id == workspace:
        raise RuntimeError("simulated bug: this release cannot store the record")
    return await insert(self, record)

AuditStore.insert = buggy_insert
asyncio.run(run_consumers(Settings(), ["audit-recorder"], metrics_port=metrics_port,
                          group_ids={"audit-recorder": group_id}))
"""


def audit_message(workspace: str, payload_workspace: str | None = None) -> tuple[str, bytes]:
    """An audit.recorded.v1 envelope (its audit id and bytes); `payload_workspace` makes the
    payload name another workspace than the envelope, which the recorder never accepts."""
    audit_id = str(uuid.uuid4())
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": "audit.recorded",
        "correlation_id": f"ops-{uuid.uuid4().hex[:8]}",
        "workspace_id": workspace,
        "user_id": "operator:ops-test",
        "payload": {
            "audit_id": audit_id,
            "workspace_id": payload_workspace or workspace,
            "user_id": "operator:ops-test",
            "action": "workspace.plan_changed",
            "outcome": "done",
            "created_at": datetime.now(UTC).isoformat(),
            "correlation_id": "ops",
        },
    }
    return audit_id, json.dumps(envelope).encode()


def publish(
    topic: str,
    value: bytes,
    key: bytes,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> tuple[int, int]:
    async def send() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap(), acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(
                topic, value, key=key, headers=headers or [], partition=partition
            )
            return sent.partition, sent.offset
        finally:
            await producer.stop()

    return asyncio.run(send())


def commit(group: str, offsets: dict[TopicPartition, int]) -> None:
    async def run() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(offsets))
            await consumer.commit(offsets)
        finally:
            await consumer.stop()

    asyncio.run(run())


def end_offsets(topic: str) -> dict[TopicPartition, int]:
    async def ends() -> dict[TopicPartition, int]:
        partitions = await topic_partitions(kafka_bootstrap(), [topic])
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap())
        await consumer.start()
        try:
            return dict(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()

    return asyncio.run(ends())


def dead_letter_of(source: tuple[int, int]) -> str | None:
    """The DLQ position (P:O) of the dead letter of audit.recorded.v1's record at `source`."""
    return asyncio.run(_dlq_positions()).get(f"{source[0]}:{source[1]}")


async def _dlq_positions() -> dict[str, str]:
    consumer = AIOKafkaConsumer(
        AUDIT_DLQ,
        bootstrap_servers=kafka_bootstrap(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        positions: dict[str, str] = {}
        batches = await consumer.getmany(timeout_ms=2000)
        while batches:
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    if headers.get("dlq_source_topic") == AUDIT:
                        source = f"{headers['dlq_source_partition']}:{headers['dlq_source_offset']}"
                        positions[source] = f"{r.partition}:{r.offset}"
            batches = await consumer.getmany(timeout_ms=500)
        return positions
    finally:
        await consumer.stop()


def cli_json(stack: Stack, *args: str, **options: Any) -> Any:
    done = stack.cli(*args, "--json", **options)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_clean_error(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert any(line.startswith("error: ") for line in done.stderr.splitlines()), done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr


def audit_docs(stack: Stack, database: str, workspace: str) -> list[dict[str, Any]]:
    with MongoClient(stack.env["STUDIO_MONGO_URL"], tz_aware=True) as mongo:
        return list(mongo[database].audit_records.find({"workspace_id": workspace}).sort("_id"))


# --- dead letters -------------------------------------------------------------------------


def test_a_poison_message_lands_in_the_dlq_and_dlq_list_and_show_give_its_reason(
    stack: Stack,
) -> None:
    workspace = f"ops-poison-{uuid.uuid4().hex[:8]}"
    audit_id, value = audit_message(workspace, payload_workspace="someone-else")
    source = publish(AUDIT, value, workspace.encode(), [("event_type", b"audit.recorded")])
    position = wait_until(
        lambda: dead_letter_of(source), timeout=60, what="the poison record in the DLQ", every=1
    )

    topics = {t["topic"]: t for t in cli_json(stack, "dlq", "list")}
    assert topics[AUDIT_DLQ]["exists"] and topics[AUDIT_DLQ]["records"] >= 1
    assert topics[AUDIT_DLQ]["source_topic"] == AUDIT

    letters = {d["position"]: d for d in cli_json(stack, "dlq", "list", AUDIT)}
    letter = letters[position]
    assert letter["source_topic"] == AUDIT
    assert letter["source_position"] == f"{source[0]}:{source[1]}"
    assert letter["error_type"] == "PermanentError"
    assert f"audit record {audit_id} names workspace 'someone-else'" in letter["reason"]
    assert letter["key"] == workspace
    assert letter["replayed"] is None

    table = stack.cli("dlq", "list", AUDIT_DLQ)
    assert table.returncode == 0, table.stderr
    assert position in table.stdout and "PermanentError" in table.stdout

    shown = cli_json(stack, "dlq", "show", AUDIT, position)
    assert shown["headers"]["dlq_source_topic"] == AUDIT
    assert shown["headers"]["event_type"] == "audit.recorded"
    assert shown["value_encoding"] == "json"
    assert shown["value"]["payload"]["audit_id"] == audit_id
    text = stack.cli("dlq", "show", AUDIT, position)
    assert text.returncode == 0, text.stderr
    assert "dlq_reason: audit record" in text.stdout
    assert f'"audit_id": "{audit_id}"' in text.stdout

    assert_clean_error(stack.cli("dlq", "show", AUDIT, "0:99999999"), "no record at 0:99999999")
    assert_clean_error(stack.cli("dlq", "show", AUDIT, "first"), "PARTITION:OFFSET")
    assert_clean_error(stack.cli("dlq", "list", "audit.recorded.v9"), "no such topic")
    assert_clean_error(
        stack.cli("dlq", "list", extra_env={"STUDIO_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}),
        "Kafka is not reachable",
    )


def test_a_dead_letter_without_a_source_topic_is_refused(stack: Stack) -> None:
    partition, offset = publish(AUDIT_DLQ, b"written by hand", b"by-hand")
    done = stack.cli("dlq", "replay", AUDIT, "--offset", f"{partition}:{offset}")
    assert_clean_error(done, "1 dead letter(s) refused")
    assert "source topic is unknown" in done.stdout
    assert not [r for r in read_topic(AUDIT) if r[0] == b"by-hand"]


@pytest.fixture
def private_database(stack: Stack) -> Iterator[str]:
    name = f"ops_{uuid.uuid4().hex[:10]}"
    yield name
    with MongoClient(stack.env["STUDIO_MONGO_URL"]) as mongo:
        mongo.drop_database(name)


def start_audit_recorder(
    stack: Stack, name: str, database: str, group_id: str, *, buggy_for: str | None = None
) -> subprocess.Popen[bytes]:
    port = free_port()
    env = {**stack.env, "STUDIO_MONGO_DB": database}
    if buggy_for is None:
        args = [STUDIO_AI, "worker", "run", "--group", "audit-recorder", "--group-id", group_id]
        args += ["--metrics-port", str(port)]
    else:
        args = [sys.executable, "-c", BUGGY_AUDIT_RECORDER, str(port), group_id, buggy_for]
    log = (stack.workdir / f"{name}.log").open("ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=stack.workdir)
    stack.procs[name] = proc

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited:\n{stack.log_tail(name)}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=60, what=f"{name} to run")
    return proc


def test_replaying_a_dead_letter_after_the_fix_processes_it_once(
    stack: Stack, private_database: str
) -> None:
    workspace = f"ops-fix-{uuid.uuid4().hex[:8]}"
    group_id = f"ops-fix-{uuid.uuid4().hex[:8]}"
    # The new release starts where the topic ends now (it is not a replay of the topic).
    commit(group_id, end_offsets(AUDIT))
    start_audit_recorder(stack, "buggy-recorder", private_database, group_id, buggy_for=workspace)
    try:
        audit_id, value = audit_message(workspace)
        source = publish(AUDIT, value, workspace.encode(), [("event_type", b"audit.recorded")])
        position = wait_until(
            lambda: dead_letter_of(source), timeout=60, what="the failed record in the DLQ", every=1
        )
        letter = {d["position"]: d for d in cli_json(stack, "dlq", "list", AUDIT)}[position]
        assert letter["error_type"] == "RuntimeError"
        assert "simulated bug" in letter["reason"]
    finally:
        stack.kill("buggy-recorder")
    assert audit_docs(stack, private_database, workspace) == []

    # The fix is deployed: the released audit-recorder, same group, same database.
    start_audit_recorder(stack, "fixed-recorder", private_database, group_id)
    try:
        dry = stack.cli("dlq", "replay", AUDIT, "--offset", position, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would replay" in dry.stdout and "nothing published" in dry.stderr

        first = stack.cli("dlq", "replay", AUDIT, "--offset", position)
        assert first.returncode == 0, first.stderr
        assert "1 replayed" in first.stderr, first.stderr
        docs = wait_until(
            lambda: audit_docs(stack, private_database, workspace),
            timeout=60,
            what="the replayed record to be recorded",
        )
        assert [d["_id"] for d in docs] == [audit_id]

        second = stack.cli("dlq", "replay", AUDIT, "--offset", position)
        assert second.returncode == 0, second.stderr
        assert "0 replayed, 1 skipped" in second.stderr, second.stderr
        assert "already replayed" in second.stdout
        wait_until(
            lambda: asyncio.run(group_caught_up(kafka_bootstrap(), group_id, [AUDIT])),
            timeout=60,
            what="the fixed recorder to reach the end of the topic",
        )
    finally:
        stack.kill("fixed-recorder")

    assert [d["_id"] for d in audit_docs(stack, private_database, workspace)] == [audit_id]
    copies = [
        headers
        for key, headers, body in read_topic(AUDIT)
        if key == workspace.encode() and body.get("payload", {}).get("audit_id") == audit_id
    ]
    assert len(copies) == 2, copies  # the original and one replayed copy
    assert copies[1]["dlq_replayed_from"] == f"{AUDIT_DLQ}:{position}"
    assert copies[1]["event_type"] == "audit.recorded"
    listed = {d["position"]: d for d in cli_json(stack, "dlq", "list", AUDIT)}[position]
    assert listed["replayed"]["state"] == "replayed"
    topic, _, copy = listed["replayed"]["replayed_to"].partition(" ")
    assert topic == AUDIT
    copy_partition, copy_offset = (int(n) for n in copy.split(":"))
    assert dead_letter_of((copy_partition, copy_offset)) is None  # the copy did not fail again


# --- topics and lag -----------------------------------------------------------------------


@pytest.fixture
def lag_topic() -> Iterator[str]:
    name = f"ops-lag-{uuid.uuid4().hex[:8]}"

    async def admin(create: bool) -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
        await client.start()
        try:
            if create:
                await client.create_topics([NewTopic(name, 2, 1)])
            else:
                await client.delete_topics([name])
        finally:
            await client.close()

    asyncio.run(admin(True))
    yield name
    asyncio.run(admin(False))


def test_topics_describe_shows_partitions_and_a_groups_lag(stack: Stack, lag_topic: str) -> None:
    for n in range(5):
        publish(lag_topic, f"m{n}".encode(), b"k", partition=0)
    for n in range(2):
        publish(lag_topic, f"n{n}".encode(), b"k", partition=1)
    group = f"{lag_topic}-readers"
    commit(group, {TopicPartition(lag_topic, 0): 2, TopicPartition(lag_topic, 1): 2})

    report = cli_json(stack, "topics", "describe", lag_topic, "--group", f"{lag_topic}-*")
    (topic,) = report["topics"]
    assert topic["topic"] == lag_topic and topic["replication"] == 1
    assert [(p["partition"], p["end"]) for p in topic["partitions"]] == [(0, 5), (1, 2)]
    (lag,) = report["groups"]
    assert lag["group"] == group and lag["lag"] == 3
    assert [(p["committed"], p["lag"]) for p in lag["partitions"]] == [(2, 3), (2, 0)]

    table = stack.cli("topics", "describe", lag_topic, "--group", group)
    assert table.returncode == 0, table.stderr
    assert "0:5 1:2" in table.stdout and "0:2/5 1:2/2" in table.stdout

    # The live audit-recorder of this stack on its topic.
    live = stack.env["STUDIO_CONSUMER_GROUP_PREFIX"] + "audit-recorder"
    report = cli_json(stack, "topics", "describe", AUDIT, "--group", live)
    assert len(report["topics"][0]["partitions"]) >= 1
    assert [g["group"] for g in report["groups"]] == [live]

    assert_clean_error(stack.cli("topics", "describe", "no-such-topic"), "no such topic")


# --- rebuilding a projection --------------------------------------------------------------


def test_replay_rebuilds_the_audit_log_from_its_topic(stack: Stack) -> None:
    workspace, _ = new_workspace(stack, "ops-rebuild")
    stack.create_key(workspace, "member-1", "member")
    live = stack.env["STUDIO_CONSUMER_GROUP_PREFIX"] + "audit-recorder"
    database = stack.env["STUDIO_MONGO_DB"]
    wait_until(
        lambda: asyncio.run(group_caught_up(kafka_bootstrap(), live, [AUDIT])),
        timeout=60,
        what="the live audit recorder to catch up",
    )
    before = audit_docs(stack, database, workspace)
    assert len(before) == 2, before  # the two key creations
    with MongoClient(stack.env["STUDIO_MONGO_URL"]) as mongo:
        others_before = mongo[database].audit_records.count_documents({})
        mongo[database].audit_records.delete_many({"workspace_id": workspace})
    assert audit_docs(stack, database, workspace) == []

    done = stack.cli("replay", "audit-recorder", "--timeout", "120", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "audit-recorder has caught up" in done.stderr
    assert AUDIT in done.stdout

    assert audit_docs(stack, database, workspace) == before
    with MongoClient(stack.env["STUDIO_MONGO_URL"]) as mongo:
        assert mongo[database].audit_records.count_documents({}) >= others_before

    help_text = stack.cli("replay", "--help")
    assert "idempotent" in help_text.stdout
    assert_clean_error(stack.cli("replay", "no-such-group"), "unknown group")
