"""Crossref (https://api.crossref.org): works by DOI and free-text search, as ResearchSource.

Requests go to `GET /works?query=<q>&rows=<limit>` and `GET /works/<doi>` (the DOI quoted with
`/` kept, which Crossref accepts), with a User-Agent that names studio-ai and, when
`crossref_mailto` is set, a `mailto=` parameter too, which puts them in Crossref's polite pool.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from studio_ai.adapters.research.base import (
    ProviderError,
    checked_query,
    expect_ok,
    send_with_retries,
    server_label,
    user_agent,
)
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.markup import clean_abstract, clean_title
from studio_ai.domain.source_ids import normalise_doi, source_id
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.research import ProviderName, ResearchSource

log = logging.getLogger(__name__)

DATE_FIELDS = ("published-print", "published-online", "issued", "created")


class CrossrefProvider:
    """Crossref's REST API. `get` takes a DOI (`10.1038/srep16696`, `https://doi.org/...` or
    `doi:...`); `search` sends the query as Crossref's free-text `query`."""

    name: ProviderName = ProviderName.CROSSREF

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._mailto = settings.crossref_mailto or None
        self._attempts = settings.research_attempts
        self._backoff_s = settings.research_backoff_s
        self._timeout_s = settings.research_timeout_s
        base_url = settings.crossref_base_url.rstrip("/")
        self._target = server_label(base_url)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"User-Agent": user_agent(self._mailto), "Accept": "application/json"},
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=True,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, external_id: str) -> ResearchSource:
        try:
            doi = normalise_doi(external_id)
        except InvalidInput as exc:
            raise ProviderError(self.name, "invalid_id", exc.message) from None
        response = await self._send(f"/works/{quote(doi, safe='/')}", {})
        if response.status_code == 404:
            raise ProviderError(
                self.name,
                "not_found",
                f"crossref has no work with DOI {doi}; check the DOI, or search crossref by "
                "its title",
            )
        if response.status_code == 400:
            raise ProviderError(
                self.name,
                "invalid_id",
                f"crossref rejected the DOI {doi} (HTTP 400); check the DOI",
            )
        expect_ok(self.name, response)
        work = self._message(response)
        source = work_to_source(work, fallback_doi=doi)
        if source is None:
            raise ProviderError(
                self.name,
                "malformed",
                f"crossref sent a response that could not be read (the work for DOI {doi} has "
                "no usable DOI); try again later, and report it if it persists",
            )
        return source

    async def search(self, query: str, limit: int) -> list[ResearchSource]:
        text = checked_query(self.name, query, limit)
        response = await self._send("/works", {"query": text, "rows": str(limit)})
        if response.status_code == 400:
            raise InvalidInput(
                "crossref rejected the search query (HTTP 400); use plain words, without "
                "field syntax"
            )
        expect_ok(self.name, response)
        items = self._message(response).get("items")
        if not isinstance(items, list):
            raise self._malformed("the work list has no 'items' array")
        sources: list[ResearchSource] = []
        for item in items:
            source = work_to_source(item) if isinstance(item, dict) else None
            if source is None:
                log.info("crossref search item without DOI or title skipped")
                continue
            sources.append(source)
        return sources[:limit]

    async def _send(self, path: str, params: dict[str, str]) -> httpx.Response:
        if self._mailto:
            params = {**params, "mailto": self._mailto}

        async def send() -> httpx.Response:
            return await self._http.get(path, params=params)

        return await send_with_retries(
            self.name,
            send,
            attempts=self._attempts,
            backoff_s=self._backoff_s,
            timeout_s=self._timeout_s,
            target=self._target,
        )

    def _message(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise self._malformed("the body is not JSON") from None
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict):
            raise self._malformed("no 'message' object")
        return message

    def _malformed(self, detail: str) -> ProviderError:
        return ProviderError(
            self.name,
            "malformed",
            f"crossref sent a response that could not be read ({detail}); try again later, "
            "and report it if it persists",
        )


def work_to_source(
    work: dict[str, Any], *, fallback_doi: str | None = None
) -> ResearchSource | None:
    """A Crossref work as a ResearchSource; None when it has no valid DOI, or (without
    `fallback_doi`, as in search results) no title. A work fetched by DOI with no title is
    called "Untitled work (doi:...)"."""
    doi = _doi(work.get("DOI")) or fallback_doi
    if doi is None:
        return None
    title = _first_clean(work.get("title"))
    if title is None:
        if fallback_doi is None:
            return None
        title = f"Untitled work (doi:{doi})"
    url = work.get("URL")
    if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        url = f"https://doi.org/{doi}"
    abstract = work.get("abstract")
    work_type = work.get("type")
    return ResearchSource(
        source_id=source_id(ProviderName.CROSSREF, doi),
        provider=ProviderName.CROSSREF,
        external_id=doi,
        title=title,
        authors=_authors(work.get("author")),
        year=_year(work),
        venue=_venue(work),
        abstract=clean_abstract(abstract) if isinstance(abstract, str) else None,
        url=url,
        doi=doi,
        work_type=work_type if isinstance(work_type, str) and work_type else None,
    )


def _doi(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return normalise_doi(value)
    except InvalidInput:
        return None


def _first_clean(values: Any) -> str | None:
    """The first entry of a Crossref string list that is not empty once cleaned."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        return None
    for value in values:
        if isinstance(value, str) and (cleaned := clean_title(value)):
            return cleaned
    return None


def _authors(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    names: list[str] = []
    for person in value:
        if not isinstance(person, dict):
            continue
        parts = [person.get("given"), person.get("family")]
        text = " ".join(p for p in parts if isinstance(p, str) and p.strip())
        if not text and isinstance(person.get("name"), str):
            text = person["name"]  # an organisation
        if cleaned := clean_title(text):
            names.append(cleaned)
    return names


def _year(work: dict[str, Any]) -> int | None:
    for field in DATE_FIELDS:
        date = work.get(field)
        parts = date.get("date-parts") if isinstance(date, dict) else None
        if not isinstance(parts, list) or not parts or not isinstance(parts[0], list):
            continue
        if not parts[0]:
            continue
        year = parts[0][0]
        if isinstance(year, int) and not isinstance(year, bool) and 1000 <= year <= 2999:
            return year
        if isinstance(year, str) and year.isdigit() and 1000 <= int(year) <= 2999:
            return int(year)
    return None


def _venue(work: dict[str, Any]) -> str | None:
    """The journal or book (`container-title`), else the posting server of a preprint
    (`institution`, e.g. bioRxiv), else the publisher."""
    venue = _first_clean(work.get("container-title"))
    if venue is None and isinstance(work.get("institution"), list):
        venue = _first_clean([i.get("name") for i in work["institution"] if isinstance(i, dict)])
    if venue is None:
        venue = _first_clean(work.get("publisher"))
    return venue
