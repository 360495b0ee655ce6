"""The pure parts of the operators' tools: positions, replay refusals, lag and catch-up."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition

from studio_ai.runtime.dead_letters import (
    DeadLetter,
    DeadLetterError,
    Position,
    dlq_topic_for,
    parse_position,
    replay_refusal,
)
from studio_ai.runtime.topic_admin import GroupLag, caught_up, is_pool_topic, system_topics

AUDIT = "audit.recorded.v1"


def letter(headers: dict[str, str], topic: str = f"{AUDIT}.dlq") -> DeadLetter:
    return DeadLetter(
        topic=topic,
        partition=1,
        offset=7,
        timestamp=None,
        key=b"ws",
        value=b"{}",
        headers=tuple((k, v.encode()) for k, v in headers.items()),
    )


def test_positions_are_partition_colon_offset() -> None:
    assert parse_position(" 2:41 ") == Position(2, 41)
    assert str(Position(0, 3)) == "0:3"
    for bad in ("7", "a:1", "1:-2", "1:2:3", ""):
        with pytest.raises(DeadLetterError, match="PARTITION:OFFSET"):
            parse_position(bad)


def test_a_topic_or_its_dlq_name_names_the_dlq() -> None:
    assert dlq_topic_for(AUDIT) == f"{AUDIT}.dlq"
    assert dlq_topic_for(f"{AUDIT}.dlq") == f"{AUDIT}.dlq"


def test_a_dead_letter_goes_back_only_to_its_own_known_existing_source_topic() -> None:
    existing = {AUDIT, "ai.inference-requested.llama-1b.v1"}
    good = letter({"dlq_source_topic": AUDIT, "event_type": "audit.recorded"})
    assert replay_refusal(good, existing) is None
    assert good.source_headers() == [("event_type", b"audit.recorded")]
    assert good.replay_id == f"{AUDIT}.dlq:1:7"

    assert "source topic is unknown" in (replay_refusal(letter({}), existing) or "")
    other = letter({"dlq_source_topic": "models.installed.v1"})
    assert "does not match" in (replay_refusal(other, existing) or "")
    stranger = letter({"dlq_source_topic": "billing.v1"}, topic="billing.v1.dlq")
    assert "not a topic of this system" in (replay_refusal(stranger, existing) or "")
    gone = letter(
        {"dlq_source_topic": "ai.inference-requested.old.v1"}, "ai.inference-requested.old.v1.dlq"
    )
    assert "does not exist" in (replay_refusal(gone, existing) or "")
    pool = letter(
        {"dlq_source_topic": "ai.inference-requested.llama-1b.v1"},
        "ai.inference-requested.llama-1b.v1.dlq",
    )
    assert replay_refusal(pool, existing) is None


def test_system_topics_add_the_pools_that_exist() -> None:
    assert is_pool_topic("ai.inference-requested.medgemma-4b-it.v1")
    assert not is_pool_topic("ai.inference-requested.v1")
    names = system_topics({"ai.inference-requested.p1.v1", "ai.inference-requested.p1.v1.dlq"})
    assert AUDIT in names and f"{AUDIT}.dlq" in names
    assert names[-2:] == ["ai.inference-requested.p1.v1", "ai.inference-requested.p1.v1.dlq"]


def test_lag_counts_uncommitted_partitions_from_the_log_start() -> None:
    lag = GroupLag(
        group="g", topic="t", committed={0: 4, 1: None}, ends={0: 10, 1: 5}, starts={1: 2}
    )
    assert lag.partition_lag(0) == 6 and lag.partition_lag(1) == 3 and lag.lag == 9


def test_caught_up_ignores_empty_partitions() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    targets = {a: (0, 5), b: (3, 3)}
    assert caught_up(targets, {a: 5})
    assert not caught_up(targets, {a: 4})
    assert not caught_up(targets, {})
