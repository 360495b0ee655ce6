"""Broker factory, explicit topic creation and the typed event publisher."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from studio_ai.runtime.delivery import DeliveryPolicy, delivery_guard
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.topics import ALL_TOPICS, TopicSpec, topic_names

log = logging.getLogger(__name__)


def new_broker(
    settings: Settings,
    *,
    client_id: str,
    registry: CollectorRegistry,
    policy: DeliveryPolicy | None = None,
) -> KafkaBroker:
    """A broker that publishes with acks=all and, given a policy, guards every subscriber."""
    middlewares: list[object] = [KafkaPrometheusMiddleware(registry=registry, app_name=client_id)]
    if policy is not None:
        middlewares.append(delivery_guard(policy))
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        middlewares=middlewares,  # type: ignore[arg-type]
        logger=logging.getLogger(f"studio_ai.broker.{client_id}"),
        log_level=logging.DEBUG,
        description="studio-ai events",
    )
    if policy is not None and policy.dead_letter is None:

        async def dead_letter(
            topic: str, key: bytes | None, value: bytes, headers: dict[str, str]
        ) -> None:
            await broker.publish(value, topic=topic, key=key, headers=headers)

        policy.dead_letter = dead_letter
    return broker


async def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = ALL_TOPICS, *, extra: Iterable[str] = ()
) -> list[str]:
    """Create the topics (and their DLQs) that do not exist yet; return the ones created."""
    names = [*topic_names(tuple(specs)), *extra]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="studio-ai-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=settings.topic_partitions,
                        replication_factor=settings.topic_replication,
                        # Dead letters wait for an operator: never expire them by time.
                        topic_configs={"retention.ms": "-1"} if name.endswith(".dlq") else {},
                    )
                    for name in missing
                ]
            )
        except TopicAlreadyExistsError:
            log.info("topics created concurrently by another process", extra={"topics": missing})
        log.info("topics created", extra={"topics": missing})
        return missing
    finally:
        await admin.close()


class EventPublisher:
    """Publishes envelopes keyed by entity id, with the chain ids in headers."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, topic: TopicSpec, event: Envelope[Any], *, key: str) -> None:
        await self._broker.publish(
            event.model_dump(mode="json", serialize_as_any=True),
            topic=topic.name,
            key=key.encode(),
            headers={
                "event_type": event.event_type,
                "event_id": str(event.event_id),
                "correlation_id": event.correlation_id,
                "workspace_id": event.workspace_id,
                "content-type": "application/json",
            },
            correlation_id=event.correlation_id,
        )
