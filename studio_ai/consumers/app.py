"""Builds a consumer process: a broker carrying only the groups asked for.

Each Kubernetes Deployment runs one group (`studio-ai worker run --group downloader`); `make
run` runs them all in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from faststream.kafka import KafkaBroker, KafkaRouter
from prometheus_client import CollectorRegistry

from studio_ai.adapters.model_download import ModelDownloader
from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.consumers import (
    audit_recorder,
    downloader,
    insights_worker,
    job_projector,
    model_projector,
    session_projector,
    usage_meter,
)
from studio_ai.consumers.deps import ConsumerDeps
from studio_ai.consumers.job_projector import metrics_recorder
from studio_ai.runtime.broker import EventPublisher, new_broker
from studio_ai.runtime.delivery import DeliveryPolicy
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.runtime.settings import Settings

GROUPS: dict[str, Callable[..., KafkaRouter]] = {
    downloader.GROUP: downloader.build_router,
    model_projector.GROUP: model_projector.build_router,
    job_projector.GROUP: job_projector.build_router,
    metrics_recorder.GROUP: metrics_recorder.build_router,
    audit_recorder.GROUP: audit_recorder.build_router,
    usage_meter.GROUP: usage_meter.build_router,
    insights_worker.GROUP: insights_worker.build_router,
    session_projector.GROUP: session_projector.build_router,
}


# Groups whose effects are only projections (idempotent store writes): safe to replay. The
# others act on the world: the downloader downloads, the insights worker calls LLMs.
PROJECTION_GROUPS: tuple[str, ...] = (
    model_projector.GROUP,
    job_projector.GROUP,
    metrics_recorder.GROUP,
    audit_recorder.GROUP,
    usage_meter.GROUP,
    session_projector.GROUP,
)


def unknown_groups(groups: list[str]) -> list[str]:
    return [g for g in groups if g not in GROUPS]


@dataclass
class ConsumerApp:
    broker: KafkaBroker
    store: MongoStore
    registry: CollectorRegistry
    groups: list[str]
    deps: ConsumerDeps

    async def close(self) -> None:
        """After the broker stopped: what the groups opened, then the store."""
        for close in self.deps.closers:
            await close()
        await self.store.close()


def create_consumer_app(
    settings: Settings,
    groups: list[str],
    *,
    group_ids: Mapping[str, str] | None = None,
    replaying: bool = False,
) -> ConsumerApp:
    """`group_ids` renames groups, e.g. to replay a projection from offset 0 under a new id;
    `replaying`: messages that fail are counted, not dead-lettered a second time."""
    if bad := unknown_groups(groups):
        raise ValueError(
            f"unknown consumer group(s) {', '.join(bad)}; known groups: {', '.join(GROUPS)}"
        )
    registry = CollectorRegistry()
    metrics = ConsumerMetrics.create(registry)
    policy = DeliveryPolicy(
        attempts=settings.handler_attempts,
        backoff_s=settings.handler_backoff_s,
        metrics=metrics,
        publish_dead_letters=not replaying,
    )
    broker = new_broker(
        settings, client_id="studio-ai-" + "+".join(groups), registry=registry, policy=policy
    )
    store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
    deps = ConsumerDeps(
        settings=settings,
        store=store,
        publisher=EventPublisher(broker),
        downloader=ModelDownloader(settings, metrics),
    )
    for group in groups:
        group_id = (group_ids or {}).get(group, settings.consumer_group_prefix + group)
        broker.include_router(GROUPS[group](deps, group_id=group_id))
    return ConsumerApp(broker=broker, store=store, registry=registry, groups=groups, deps=deps)
