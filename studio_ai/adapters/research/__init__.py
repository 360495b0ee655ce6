"""Research providers: Crossref, arXiv and offline samples, each returning ResearchSource."""

from studio_ai.adapters.research.base import ProviderError, ResearchProvider
from studio_ai.adapters.research.registry import build_providers, close_providers

__all__ = ["ProviderError", "ResearchProvider", "build_providers", "close_providers"]
