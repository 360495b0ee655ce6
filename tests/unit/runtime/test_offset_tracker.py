"""Only offsets below which every message is finished are committed."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from studio_ai.runtime.inflight import OffsetTracker

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_commit_stops_at_the_first_unfinished_message() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.started(P0, offset)
    for offset in (0, 1, 3, 4):
        tracker.finished(P0, offset)
    assert tracker.committable() == {P0: 2}
    tracker.finished(P0, 2)
    assert tracker.committable() == {P0: 5}
    assert tracker.in_flight() == 0


def test_partitions_are_independent_and_can_be_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.started(P0, 10)
    tracker.started(P1, 3)
    tracker.finished(P1, 3)
    assert tracker.committable() == {P0: 10, P1: 4}
    tracker.forget([P0])
    tracker.finished(P0, 10)
    assert tracker.committable() == {P1: 4}
