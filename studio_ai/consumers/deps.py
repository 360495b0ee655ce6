"""What handlers depend on, built once per process by the app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from studio_ai.adapters.model_download import ModelDownloader
from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.runtime.broker import EventPublisher
from studio_ai.runtime.settings import Settings


@dataclass(frozen=True)
class ConsumerDeps:
    settings: Settings
    store: MongoStore
    publisher: EventPublisher
    downloader: ModelDownloader
    # What a group opened for the process's life (engines, HTTP clients): closed at shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
