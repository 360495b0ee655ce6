"""The subscriber every consumer group uses: commits only after its handler succeeded
(NACK_ON_ERROR; the delivery guard turns permanent failures into DLQ records) and starts a
new group from the earliest offset, so a fresh or renamed group replays its topics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaRouter

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def group_subscriber(
    router: KafkaRouter, group_id: str, **options: Any
) -> Callable[[str], Callable[[Handler], Handler]]:
    """`@subscribe(topic)` for handlers of group `group_id` on `router` (`options`: more
    subscriber settings, e.g. max_poll_interval_ms for slow handlers)."""

    def subscribe(topic: str) -> Callable[[Handler], Handler]:
        return router.subscriber(  # type: ignore[no-any-return]
            topic,
            group_id=group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            **options,
        )

    return subscribe
