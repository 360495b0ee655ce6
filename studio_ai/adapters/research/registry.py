"""The research providers a process uses, by name, built from settings."""

from __future__ import annotations

from collections.abc import Mapping

from studio_ai.adapters.research.arxiv import ArxivProvider
from studio_ai.adapters.research.base import ResearchProvider
from studio_ai.adapters.research.crossref import CrossrefProvider
from studio_ai.adapters.research.fixture import FixtureProvider
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.research import ProviderName


def build_providers(settings: Settings) -> dict[ProviderName, ResearchProvider]:
    """One provider per ProviderName; close them with `close_providers` when done."""
    return {
        ProviderName.CROSSREF: CrossrefProvider(settings),
        ProviderName.ARXIV: ArxivProvider(settings),
        ProviderName.FIXTURE: FixtureProvider(),
    }


async def close_providers(providers: Mapping[ProviderName, ResearchProvider]) -> None:
    """Close every provider's HTTP client, even when one of them fails to close."""
    errors: list[BaseException] = []
    for provider in providers.values():
        try:
            await provider.aclose()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
