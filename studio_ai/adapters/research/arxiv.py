"""arXiv (https://export.arxiv.org/api/query): papers by id and search, as ResearchSource.

The API answers with an Atom feed, parsed with defusedxml (it is untrusted input); both the
current format and the legacy one (per-element namespace declarations, `http` links,
hard-wrapped summaries) are read. A request arXiv rejects comes back as HTTP 400 with a feed
whose one entry is titled "Error" and says why in its summary.

arXiv asks clients for one request at a time, 3 s apart: every request of the process goes
through one `RequestGate`, spaced by `arxiv_min_interval_s`.
"""

from __future__ import annotations

import logging
import re
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from studio_ai.adapters.research.base import (
    ProviderError,
    RequestGate,
    checked_query,
    expect_ok,
    send_with_retries,
    server_label,
    user_agent,
)
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.markup import clean_abstract, clean_title
from studio_ai.domain.source_ids import ARXIV_EXAMPLES, normalise_arxiv_id, normalise_doi
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.research import ProviderName, ResearchSource

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

# Every arXiv request of this process passes through here (arXiv's rate-limit guidance).
ARXIV_GATE = RequestGate()

_ABS_ID = re.compile(r"^https?://(?:www\.|export\.)?arxiv\.org/abs/(\S+)$", re.I)
_FIELD_PREFIX = re.compile(r"(?:^|[\s(])(?:ti|au|abs|co|jr|cat|rn|id|all):", re.I)
_TERM = re.compile(r"[^\W_](?:[\w.'-]*[^\W_])?")


class ArxivProvider:
    """arXiv's export API. `get` takes an arXiv id (`1605.08386`, `1605.08386v2`,
    `cond-mat/0211034`, `arXiv:...`, an abs/ link) and fetches that version when one is given;
    `search` searches all fields for every word of a plain query (`all:w1 AND all:w2`), or sends
    a query with arXiv field prefixes (`ti:`, `au:`, `abs:`, `all:`...) as it is."""

    name: ProviderName = ProviderName.ARXIV

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        gate: RequestGate = ARXIV_GATE,
    ) -> None:
        self._min_interval_s = settings.arxiv_min_interval_s
        self._attempts = settings.research_attempts
        self._backoff_s = settings.research_backoff_s
        self._timeout_s = settings.research_timeout_s
        self._gate = gate
        base_url = settings.arxiv_base_url.rstrip("/")
        self._target = server_label(base_url)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"User-Agent": user_agent(settings.crossref_mailto or None)},
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=True,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, external_id: str) -> ResearchSource:
        try:
            arxiv_id, version = normalise_arxiv_id(external_id)
        except InvalidInput as exc:
            raise ProviderError(self.name, "invalid_id", exc.message) from None
        wanted = f"{arxiv_id}{version or ''}"
        response = await self._send({"id_list": wanted, "max_results": "1"})
        feed = self._feed(response, tolerate_unreadable=response.status_code == 400)
        problem = _error_summary(feed) if feed is not None else None
        if response.status_code == 400 or problem is not None:
            raise ProviderError(
                self.name,
                "invalid_id",
                f"arxiv rejected the id {wanted!r} ({problem or 'HTTP 400'}); an arXiv id looks "
                f"like {ARXIV_EXAMPLES}",
            )
        expect_ok(self.name, response)
        assert feed is not None
        for entry in feed.findall(f"{ATOM}entry"):
            source = entry_to_source(entry)
            if (
                source is not None
                and source.external_id == arxiv_id
                and (version is None or source.version in (None, version))
            ):
                return source
        raise ProviderError(
            self.name,
            "not_found",
            f"arxiv has no paper with id {wanted}; check the id (it looks like {ARXIV_EXAMPLES})",
        )

    async def search(self, query: str, limit: int) -> list[ResearchSource]:
        text = checked_query(self.name, query, limit)
        response = await self._send(
            {"search_query": search_expression(text), "start": "0", "max_results": str(limit)}
        )
        feed = self._feed(response, tolerate_unreadable=response.status_code == 400)
        problem = _error_summary(feed) if feed is not None else None
        if response.status_code == 400 or problem is not None:
            raise InvalidInput(
                f"arxiv rejected the search query ({problem or 'HTTP 400'}); use plain words, or "
                "arXiv field prefixes such as ti:, au:, abs:, all:"
            )
        expect_ok(self.name, response)
        assert feed is not None
        sources: list[ResearchSource] = []
        for entry in feed.findall(f"{ATOM}entry"):
            source = entry_to_source(entry)
            if source is None:
                log.info("arxiv search entry without an arXiv id or title skipped")
                continue
            sources.append(source)
        return sources[:limit]

    async def _send(self, params: dict[str, str]) -> httpx.Response:
        async def send() -> httpx.Response:
            async with self._gate.slot(self._min_interval_s):
                return await self._http.get("/api/query", params=params)

        return await send_with_retries(
            self.name,
            send,
            attempts=self._attempts,
            backoff_s=self._backoff_s,
            timeout_s=self._timeout_s,
            target=self._target,
        )

    def _feed(self, response: httpx.Response, *, tolerate_unreadable: bool) -> Element | None:
        """The Atom feed; None when it cannot be read and `tolerate_unreadable` (an error
        status says enough), else ProviderError `malformed`."""
        detail: str | None = None
        try:
            root: Element = fromstring(response.content)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            detail = f"the body is not valid XML: {type(exc).__name__}"
        else:
            if root.tag == f"{ATOM}feed":
                return root
            detail = "the body is not an Atom feed"
        if tolerate_unreadable or response.status_code >= 400:
            return None
        raise ProviderError(
            self.name,
            "malformed",
            f"arxiv sent a response that could not be read ({detail}); try again later, and "
            "report it if it persists",
        )


def search_expression(query: str) -> str:
    """arXiv's `search_query` for a user query: as it is when it uses field prefixes, else
    every word in all fields (`all:prime AND all:editing`)."""
    if _FIELD_PREFIX.search(query):
        return query
    terms = _TERM.findall(query)
    if not terms:
        raise InvalidInput("the arxiv search query has no words to search; use letters or digits")
    return " AND ".join(f"all:{term}" for term in terms)


def entry_to_source(entry: Element) -> ResearchSource | None:
    """An Atom entry as a ResearchSource; None for an error entry or one without an arXiv id
    or a title."""
    match = _ABS_ID.match(_text(entry, f"{ATOM}id") or "")
    if match is None:
        return None
    try:
        arxiv_id, version = normalise_arxiv_id(match.group(1))
    except InvalidInput:
        return None
    title = clean_title(_text(entry, f"{ATOM}title"))
    if title is None:
        return None
    authors = [
        name
        for author in entry.findall(f"{ATOM}author")
        if (name := clean_title(_text(author, f"{ATOM}name")))
    ]
    published = _text(entry, f"{ATOM}published") or ""
    year = int(published[:4]) if published[:4].isdigit() else None
    journal_ref = clean_title(_text(entry, f"{ARXIV}journal_ref"))
    return ResearchSource(
        source_id=f"{ProviderName.ARXIV.value}:{arxiv_id}",
        provider=ProviderName.ARXIV,
        external_id=arxiv_id,
        title=title,
        authors=authors,
        year=year,
        venue=journal_ref or "arXiv",
        abstract=clean_abstract(_text(entry, f"{ATOM}summary")),
        url=_abs_link(entry) or f"https://arxiv.org/abs/{arxiv_id}{version or ''}",
        doi=_doi(_text(entry, f"{ARXIV}doi")),
        version=version,
        work_type="preprint",
    )


def _error_summary(feed: Element) -> str | None:
    """What an arXiv error feed says ("incorrect id format for abc"), or None."""
    for entry in feed.findall(f"{ATOM}entry"):
        entry_id = _text(entry, f"{ATOM}id") or ""
        title = (_text(entry, f"{ATOM}title") or "").strip()
        if "/api/errors" in entry_id or (title == "Error" and not _ABS_ID.match(entry_id)):
            summary = clean_title(_text(entry, f"{ATOM}summary"))
            return (summary or "an error")[:200]
    return None


def _text(element: Element, tag: str) -> str | None:
    child = element.find(tag)
    return "".join(child.itertext()) if child is not None else None


def _abs_link(entry: Element) -> str | None:
    for link in entry.findall(f"{ATOM}link"):
        href = link.get("href") or ""
        if link.get("rel") == "alternate" and _ABS_ID.match(href):
            return re.sub(r"^http://", "https://", href)
    return None


def _doi(value: str | None) -> str | None:
    if not value or not value.split():
        return None
    try:
        return normalise_doi(value.split()[0])
    except InvalidInput:
        return None
