"""The store and an event publisher for operator commands that act directly (not through the
gateway): assigning plans, creating keys, sweeping images, exporting the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.runtime.broker import EventPublisher, new_broker
from studio_ai.runtime.settings import Settings


@dataclass
class OperatorSession:
    settings: Settings
    store: MongoStore
    publisher: EventPublisher


@asynccontextmanager
async def operator_session(settings: Settings, *, client_id: str) -> AsyncIterator[OperatorSession]:
    store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
    broker = new_broker(settings, client_id=client_id, registry=CollectorRegistry())
    try:
        await store.ensure_indexes()
        await broker.start()
        yield OperatorSession(settings=settings, store=store, publisher=EventPublisher(broker))
    finally:
        await broker.stop()
        await store.close()
