"""The offline `fixture` provider: made-up sample works shipped with the package
(`studio_ai/research_fixtures/sources.json`), for demos and tests without a network.

`get` looks a sample up by id; `search` ranks samples by how many distinct query words
(lower-cased letters and digits, common English words left out) appear in the title and
abstract, ties broken by id, and leaves out samples that share no word with the query.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from studio_ai.adapters.research.base import ProviderError, checked_query
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.source_ids import normalise_fixture_id, source_id
from studio_ai.schemas.research import ProviderName, ResearchSource

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in",
        "into", "is", "it", "its", "of", "on", "or", "that", "the", "their", "this", "to", "was",
        "were", "which", "with", "without",
    }
)  # fmt: skip


def packaged_samples_text() -> str:
    """The JSON text of the samples shipped with studio-ai."""
    return files("studio_ai").joinpath("research_fixtures/sources.json").read_text("utf-8")


def load_samples(text: str) -> list[ResearchSource]:
    """The samples of a fixture file: `{"note": ..., "sources": [{"id", "title", ...}]}`."""
    data: Any = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise InvalidInput("the research fixture file needs a 'sources' list")
    samples: list[ResearchSource] = []
    for raw in data["sources"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise InvalidInput("every research fixture sample needs an 'id'")
        fields = {k: v for k, v in raw.items() if k != "id"}
        external_id = normalise_fixture_id(raw["id"])
        samples.append(
            ResearchSource(
                source_id=source_id(ProviderName.FIXTURE, external_id),
                provider=ProviderName.FIXTURE,
                external_id=external_id,
                **fields,
            )
        )
    ids = [s.external_id for s in samples]
    if len(set(ids)) != len(ids):
        raise InvalidInput("research fixture sample ids must be unique")
    return samples


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


class FixtureProvider:
    """Offline samples (the packaged ones, or those of `path`)."""

    name: ProviderName = ProviderName.FIXTURE

    def __init__(self, path: Path | None = None) -> None:
        text = path.read_text("utf-8") if path is not None else packaged_samples_text()
        self._samples = {s.external_id: s for s in load_samples(text)}
        self._words = {
            s.external_id: _words(f"{s.title} {s.abstract or ''}") for s in self._samples.values()
        }

    @property
    def ids(self) -> list[str]:
        return sorted(self._samples)

    async def aclose(self) -> None:
        return None

    async def get(self, external_id: str) -> ResearchSource:
        try:
            wanted = normalise_fixture_id(external_id)
        except InvalidInput as exc:
            raise ProviderError(self.name, "invalid_id", exc.message) from None
        sample = self._samples.get(wanted)
        if sample is None:
            raise ProviderError(
                self.name,
                "not_found",
                f"fixture has no sample work {wanted!r}; the samples are: {', '.join(self.ids)}",
            )
        return sample.model_copy(deep=True)

    async def search(self, query: str, limit: int) -> list[ResearchSource]:
        wanted = _words(checked_query(self.name, query, limit))
        scored = [
            (len(wanted & words), external_id)
            for external_id, words in self._words.items()
            if wanted & words
        ]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [self._samples[i].model_copy(deep=True) for _, i in scored[:limit]]
