"""Research providers against a local HTTP server that answers with real recorded Crossref and
arXiv responses (tests/fixtures/research, see SOURCES.md), plus scripted failures."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from studio_ai.adapters.research import ProviderError, build_providers, close_providers
from studio_ai.adapters.research.arxiv import ArxivProvider
from studio_ai.adapters.research.base import MAX_SEARCH_LIMIT, RequestGate, retry_after_seconds
from studio_ai.adapters.research.crossref import CrossrefProvider
from studio_ai.adapters.research.fixture import FixtureProvider, packaged_samples_text
from studio_ai.domain.errors import InvalidInput
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.research import ProviderName, ResearchSource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "research"
MAILTO = "research-team@example.org"

# Which recorded body answers which request (SOURCES.md names the request of each file).
CROSSREF_SEARCHES = {
    "ecology": "crossref_works_query_ecology_rows2.json",
    "ecology carl boettiger": "crossref_works_query_ecology_author_boettiger.json",
    "pooled prime editing human genetic variants": (
        "crossref_works_query_title_pooled_prime_editing.json"
    ),
    "convalescent anti sars-cov-2 plasma": "crossref_works_query_title_sars_cov_2_plasma.json",
    "askldjrq3rjaw938h": "crossref_works_query_empty.json",
}
CROSSREF_WORKS = {
    "10.1038/srep16696": (200, "crossref_work_10.1038_srep16696.json"),
    "10.1038/s42256-024-00832-8": (200, "crossref_work_10.1038_s42256-024-00832-8.json"),
    "10.48550/arxiv.2312.07559": (404, "crossref_work_not_found_404.txt"),
}
ARXIV_IDS = {
    "1605.08386": (200, "arxiv_id_list_1605.08386.xml"),
    "1111.2011v2": (200, "arxiv_legacy_id_list_1111.2011v2.xml"),
    "2101.99999": (200, "arxiv_empty.xml"),
    "2312.56789": (400, "arxiv_error_bad_id.xml"),
}
ARXIV_SEARCHES = {
    "all:testing": (200, "arxiv_query_testing.xml"),
    "au:del_maestro": (200, "arxiv_legacy_query_au_del_maestro.xml"),
    "all:zebrafish AND all:nanopore": (200, "arxiv_empty.xml"),
    "ti:(": (400, "arxiv_error_bad_id.xml"),
}


@dataclass
class Scripted:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    raw_path: bytes
    params: dict[str, str]
    headers: dict[str, str]
    at: float


class Script:
    """Scripted answers, taken first, before the recorded files; and every request seen."""

    def __init__(self) -> None:
        self.queue: list[Scripted] = []
        self.seen: list[Seen] = []

    def reset(self) -> None:
        self.queue.clear()
        self.seen.clear()


def _file(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _app(script: Script) -> Starlette:
    async def record(request: Request) -> Response | None:
        script.seen.append(
            Seen(
                path=request.url.path,
                raw_path=request.scope.get("raw_path", b""),
                params=dict(request.query_params),
                headers=dict(request.headers),
                at=time.monotonic(),
            )
        )
        if not script.queue:
            return None
        answer = script.queue.pop(0)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    async def works(request: Request) -> Response:
        if (scripted := await record(request)) is not None:
            return scripted
        name = CROSSREF_SEARCHES.get(request.query_params.get("query", ""))
        if name is None:
            return Response(b"no recording for this query", status_code=418)
        return Response(_file(name), media_type="application/json")

    async def work(request: Request) -> Response:
        if (scripted := await record(request)) is not None:
            return scripted
        status, name = CROSSREF_WORKS.get(
            request.path_params["doi"], (404, "crossref_work_not_found_404.txt")
        )
        media = "application/json" if name.endswith(".json") else "text/plain"
        return Response(_file(name), status_code=status, media_type=media)

    async def query(request: Request) -> Response:
        if (scripted := await record(request)) is not None:
            return scripted
        params = request.query_params
        if "id_list" in params:
            answer = ARXIV_IDS.get(params["id_list"])
        else:
            answer = ARXIV_SEARCHES.get(params.get("search_query", ""))
        if answer is None:
            return Response(b"no recording for this query", status_code=418)
        status, name = answer
        return Response(_file(name), status_code=status, media_type="application/atom+xml")

    return Starlette(
        routes=[
            Route("/works", works),
            Route("/works/{doi:path}", work),
            Route("/api/query", query),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(_app(script), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", script
    srv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def script(server: tuple[str, Script]) -> Iterator[Script]:
    server[1].reset()
    yield server[1]
    server[1].reset()


def _settings(base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "crossref_base_url": base_url,
        "crossref_mailto": MAILTO,
        "arxiv_base_url": base_url,
        "arxiv_min_interval_s": 0,
        "research_backoff_s": 0,
        "research_timeout_s": 5,
        "research_attempts": 3,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(server: tuple[str, Script]) -> Settings:
    return _settings(server[0])


@pytest_asyncio.fixture
async def crossref(settings: Settings, script: Script) -> AsyncIterator[CrossrefProvider]:
    provider = CrossrefProvider(settings)
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture
async def arxiv(settings: Settings, script: Script) -> AsyncIterator[ArxivProvider]:
    provider = ArxivProvider(settings, gate=RequestGate())
    yield provider
    await provider.aclose()


def _assert_plain(source: ResearchSource) -> None:
    """What every source must look like, whatever the provider sent."""
    assert source.source_id == f"{source.provider.value}:{source.external_id}"
    assert source.title and "<" not in source.title and "\n" not in source.title
    assert "  " not in source.title
    for author in source.authors:
        assert author and author == author.strip() and "<" not in author
    if source.abstract is not None:
        assert source.abstract == source.abstract.strip()
        assert "<" not in source.abstract and "jats:" not in source.abstract
        assert "  " not in source.abstract
        assert not source.abstract.lower().startswith(("abstract", "summary"))


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# --- Crossref: recorded responses -------------------------------------------------------------


async def test_crossref_get_maps_a_recorded_work(
    crossref: CrossrefProvider, script: Script
) -> None:
    source = await crossref.get("10.1038/srep16696")
    _assert_plain(source)
    assert source.source_id == "crossref:10.1038/srep16696"
    assert source.provider is ProviderName.CROSSREF
    assert source.external_id == source.doi == "10.1038/srep16696"
    assert source.title == (
        "Single-molecule FRET studies on alpha-synuclein oligomerization of Parkinson\u2019s "
        "disease genetically related mutants"
    )
    assert len(source.authors) == 8
    assert source.authors[:2] == ["Laura Tosatto", "Mathew H. Horrocks"]
    assert source.year == 2015
    assert source.venue == "Scientific Reports"
    assert source.url == "https://doi.org/10.1038/srep16696"
    assert source.work_type == "journal-article"
    assert source.version is None
    assert source.abstract is not None
    assert source.abstract.startswith(
        "Oligomers of alpha-synuclein are toxic to cells and have been proposed"
    )
    [request] = script.seen
    assert request.raw_path == b"/works/10.1038/srep16696"
    assert request.params == {"mailto": MAILTO}
    assert request.headers["user-agent"].startswith("studio-ai/")
    assert request.headers["user-agent"].endswith(
        f"(https://github.com/databiomics/studio-ai; mailto:{MAILTO})"
    )


async def test_crossref_get_accepts_a_doi_link_and_quotes_the_path(
    crossref: CrossrefProvider, script: Script
) -> None:
    source = await crossref.get("https://doi.org/10.1038/S42256-024-00832-8")
    _assert_plain(source)
    assert source.source_id == "crossref:10.1038/s42256-024-00832-8"
    assert source.title == "Augmenting large language models with chemistry tools"
    assert source.authors[:2] == ["Andres M. Bran", "Sam Cox"]
    assert len(source.authors) == 6
    assert (source.year, source.venue) == (2024, "Nature Machine Intelligence")
    assert source.abstract is not None
    assert source.abstract.startswith(
        "Large language models (LLMs) have shown strong performance in tasks across domains"
    )
    assert script.seen[0].raw_path == b"/works/10.1038/s42256-024-00832-8"


async def test_crossref_404_is_not_found_naming_the_doi(
    crossref: CrossrefProvider, script: Script
) -> None:
    with pytest.raises(ProviderError) as info:
        await crossref.get("doi:10.48550/arXiv.2312.07559")
    error = info.value
    assert (error.provider, error.kind, error.code) == (
        ProviderName.CROSSREF,
        "not_found",
        "not_found",
    )
    assert "crossref has no work with DOI 10.48550/arxiv.2312.07559" in error.message
    assert len(script.seen) == 1  # a 404 is an answer, not a failure to retry


async def test_crossref_get_refuses_a_bad_doi_without_asking(
    crossref: CrossrefProvider, script: Script
) -> None:
    with pytest.raises(ProviderError) as info:
        await crossref.get("srep16696")
    assert info.value.kind == "invalid_id"
    assert "is not a DOI; a DOI looks like 10.1038/srep16696" in info.value.message
    assert script.seen == []


async def test_crossref_search_sends_query_rows_and_mailto(
    crossref: CrossrefProvider, script: Script
) -> None:
    results = await crossref.search("  ecology ", 2)
    assert script.seen[0].path == "/works"
    assert script.seen[0].params == {"query": "ecology", "rows": "2", "mailto": MAILTO}
    assert [s.source_id for s in results] == [
        "crossref:10.1093/obo/9780199830060-0238",
        "crossref:10.1093/obo/9780199830060-0023",
    ]
    first, second = results
    for source in results:
        _assert_plain(source)
        assert source.venue == "Ecology"
        assert source.work_type == "reference-entry"
    assert first.title == "Communicating Ecology"
    assert first.authors == []  # the recorded item has no author
    assert first.year == 2022
    assert first.abstract is not None
    assert first.abstract.startswith("Communication is perhaps the most important")
    assert second.title == "Chemical Ecology"
    assert second.authors == ["André Kessler"]
    assert second.year == 2012


async def test_crossref_search_reads_a_full_page_with_markup_in_titles(
    crossref: CrossrefProvider,
) -> None:
    results = await crossref.search("ecology carl boettiger", 20)
    assert len(results) == 20
    for source in results:
        _assert_plain(source)
        assert "Carl Boettiger" in source.authors or source.external_id == "10.1111/ele.13828"
    by_id = {s.external_id: s for s in results}
    assert by_id["10.1002/fee.70021"].title == (
        "The role of AI in ecology\u2019s computational carbon footprint"
    )
    assert by_id["10.1111/2041-210x.12469"].title.endswith("trait data in R")
    treebase = by_id["10.1111/j.2041-210x.2012.00247.x"]
    assert treebase.title.startswith("Treebase: an")
    assert treebase.authors == ["Carl Boettiger", "Duncan Temple Lang"]
    assert treebase.year == 2012  # published-print first
    assert treebase.abstract is not None
    assert treebase.abstract.startswith("The TreeBASE portal is an important")
    assert "We have developed treebase, an open" in treebase.abstract
    assert by_id["10.1111/ele.14024"].year == 2022
    assert by_id["10.1177/2053951719836258"].venue == "Big Data & Society"
    preprint = by_id["10.1101/055319"]
    assert (preprint.venue, preprint.work_type, preprint.year) == (
        "bioRxiv",
        "posted-content",
        2016,
    )
    geb = by_id["10.1111/geb.13950"].abstract
    assert geb is not None and geb.startswith("Aim: Despite unprecedented environmental change")
    assert by_id["10.1007/s12080-020-00477-4"].abstract is None
    assert by_id["10.32614/cran.package.rfishbase"].work_type == "dataset"


async def test_crossref_search_reads_the_biomedical_recordings(
    crossref: CrossrefProvider,
) -> None:
    [prime] = await crossref.search("pooled prime editing human genetic variants", 1)
    _assert_plain(prime)
    assert prime.source_id == "crossref:10.1101/2024.04.01.587366"
    assert prime.title == (
        "High-throughput screening of human genetic variants by pooled prime editing"
    )
    assert prime.authors[0] == "Michael Herger"
    assert (prime.year, prime.venue, prime.work_type) == (2024, "bioRxiv", "posted-content")
    assert prime.abstract is not None
    assert prime.abstract.startswith("Understanding the effects of rare genetic variants")
    assert "targeting SMARCB1 for editing activity" in prime.abstract

    [plasma] = await crossref.search("convalescent anti sars-cov-2 plasma", 1)
    _assert_plain(plasma)
    assert plasma.source_id == "crossref:10.1007/s40278-023-41815-2"
    assert plasma.title == "Convalescent-anti-sars-cov-2-plasma/immune-globulin"
    assert plasma.authors == []
    assert plasma.abstract is None
    assert (plasma.year, plasma.venue) == (2023, "Reactions Weekly")
    assert plasma.url == "https://doi.org/10.1007/s40278-023-41815-2"


async def test_crossref_search_with_no_hits_is_empty(crossref: CrossrefProvider) -> None:
    assert await crossref.search("askldjrq3rjaw938h", 1) == []


@pytest.mark.parametrize(
    ("query", "limit"), [("", 5), ("   ", 5), ("ok", 0), ("ok", MAX_SEARCH_LIMIT + 1)]
)
async def test_a_search_without_words_or_with_a_bad_limit_is_refused(
    crossref: CrossrefProvider, arxiv: ArxivProvider, script: Script, query: str, limit: int
) -> None:
    for provider in (crossref, arxiv, FixtureProvider()):
        with pytest.raises(InvalidInput):
            await provider.search(query, limit)
    assert script.seen == []


async def test_crossref_without_mailto_sends_a_plain_user_agent(
    server: tuple[str, Script], script: Script
) -> None:
    provider = CrossrefProvider(_settings(server[0], crossref_mailto=None))
    try:
        await provider.search("ecology", 2)
    finally:
        await provider.aclose()
    assert "mailto" not in script.seen[0].params
    agent = script.seen[0].headers["user-agent"]
    assert agent.startswith("studio-ai/")
    assert agent.endswith("(https://github.com/databiomics/studio-ai)")


# --- arXiv: recorded responses ----------------------------------------------------------------


async def test_arxiv_get_maps_a_recorded_entry(arxiv: ArxivProvider, script: Script) -> None:
    source = await arxiv.get("1605.08386")
    _assert_plain(source)
    assert source.source_id == "arxiv:1605.08386"
    assert (source.external_id, source.version) == ("1605.08386", "v1")
    assert source.title == "Heat-bath random walks with Markov bases"
    assert source.authors == ["Caprice Stanley", "Tobias Windisch"]
    assert (source.year, source.venue, source.doi) == (2016, "arXiv", None)
    assert source.url == "https://arxiv.org/abs/1605.08386v1"
    assert source.work_type == "preprint"
    assert source.abstract is not None
    assert source.abstract.startswith("Graphs on lattice points are studied")
    assert script.seen[0].path == "/api/query"
    assert script.seen[0].params == {"id_list": "1605.08386", "max_results": "1"}


async def test_arxiv_get_fetches_the_version_asked_from_a_legacy_feed(
    arxiv: ArxivProvider, script: Script
) -> None:
    source = await arxiv.get("arXiv:1111.2011v2")
    _assert_plain(source)
    assert script.seen[0].params["id_list"] == "1111.2011v2"
    assert source.source_id == "arxiv:1111.2011"
    assert (source.external_id, source.version) == ("1111.2011", "v2")
    assert source.title == (
        "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert source.authors == ["James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic"]
    assert source.year == 2011
    assert source.venue == "Phys. Rev. B 85, 115117 (2012)"
    assert source.doi == "10.1103/physrevb.85.115117"
    assert source.url == "https://arxiv.org/abs/1111.2011v2"
    assert source.abstract is not None
    assert source.abstract.startswith(
        "Theoretical description of anisotropic systems, such as layered superconductors and "
        "coupled spin chains"
    )
    assert "\n" not in source.abstract  # the hard line wraps are joined


async def test_arxiv_empty_feed_is_not_found(arxiv: ArxivProvider) -> None:
    with pytest.raises(ProviderError) as info:
        await arxiv.get("2101.99999")
    assert (info.value.provider, info.value.kind) == (ProviderName.ARXIV, "not_found")
    assert "arxiv has no paper with id 2101.99999" in info.value.message


async def test_arxiv_error_feed_is_a_clear_invalid_id(arxiv: ArxivProvider, script: Script) -> None:
    with pytest.raises(ProviderError) as info:
        await arxiv.get("2312.56789")
    assert info.value.kind == "invalid_id"
    assert "arxiv rejected the id '2312.56789' (incorrect id format for abc)" in info.value.message
    assert "2101.00001" in info.value.message
    assert len(script.seen) == 1  # a 400 is an answer, not a failure to retry


async def test_arxiv_get_refuses_a_bad_id_without_asking(
    arxiv: ArxivProvider, script: Script
) -> None:
    with pytest.raises(ProviderError) as info:
        await arxiv.get("abc")
    assert info.value.kind == "invalid_id"
    assert "'abc' is not an arXiv id" in info.value.message
    assert script.seen == []


async def test_arxiv_search_of_plain_words_searches_all_fields(
    arxiv: ArxivProvider, script: Script
) -> None:
    results = await arxiv.search("testing", 10)
    assert script.seen[0].params == {
        "search_query": "all:testing",
        "start": "0",
        "max_results": "10",
    }
    assert len(results) == 10
    for source in results:
        _assert_plain(source)
        assert source.work_type == "preprint" and source.version is not None
        assert source.url == f"https://arxiv.org/abs/{source.external_id}{source.version}"
    first = results[0]
    assert first.source_id == "arxiv:2202.12139"
    assert first.title == (
        "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    )
    assert first.authors == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert first.year == 2022
    assert first.doi == "10.1109/icstw55395.2022.00035"
    assert first.venue is not None and first.venue.startswith("Artificial Intelligence in Software")
    assert first.abstract is not None
    assert first.abstract.startswith("Deep Learning (DL) has revolutionized")
    by_id = {s.external_id: s for s in results}
    assert (by_id["2204.08348"].version, by_id["2503.05378"].venue) == ("v3", "arXiv")


async def test_arxiv_search_with_field_prefixes_reads_a_legacy_feed(
    arxiv: ArxivProvider, script: Script
) -> None:
    results = await arxiv.search("au:del_maestro", 10)
    assert script.seen[0].params["search_query"] == "au:del_maestro"
    assert len(results) == 10
    for source in results:
        _assert_plain(source)
        assert any("Del Maestro" in author for author in source.authors)
    first = results[0]
    assert first.source_id == "arxiv:1201.4869"
    assert first.title == "A Luttinger Liquid Core Inside Helium-4 Filled Nanopores"
    assert first.authors == ["Adrian Del Maestro"]
    assert first.venue == "Int. J. Mod. Phys. B, 26, 1244002 (2012)"
    assert first.abstract is not None
    assert first.abstract.startswith("As helium-4 is cooled below 2.17 K it undergoes")
    assert "\n" not in first.abstract
    old_style = {s.external_id for s in results if "/" in s.external_id}
    assert old_style == {
        "cond-mat/0412498",
        "cond-mat/0603029",
        "cond-mat/0607501",
        "cond-mat/0702661",
    }


async def test_arxiv_search_with_no_hits_is_empty(arxiv: ArxivProvider, script: Script) -> None:
    assert await arxiv.search("zebrafish nanopore", 5) == []
    assert script.seen[0].params["search_query"] == "all:zebrafish AND all:nanopore"


async def test_arxiv_rejecting_a_search_query_is_invalid_input(arxiv: ArxivProvider) -> None:
    with pytest.raises(InvalidInput, match=r"arxiv rejected the search query"):
        await arxiv.search("ti:(", 5)


async def test_arxiv_requests_keep_the_minimum_interval(
    server: tuple[str, Script], script: Script
) -> None:
    provider = ArxivProvider(_settings(server[0], arxiv_min_interval_s=0.3), gate=RequestGate())
    try:
        started = time.monotonic()
        await provider.get("1605.08386")
        await provider.search("testing", 10)
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    first, second = script.seen
    assert second.at - first.at >= 0.3
    assert elapsed >= 0.3


async def test_concurrent_arxiv_requests_are_spaced_too(
    server: tuple[str, Script], script: Script
) -> None:
    provider = ArxivProvider(_settings(server[0], arxiv_min_interval_s=0.2), gate=RequestGate())
    try:
        await asyncio.gather(provider.get("1605.08386"), provider.get("1111.2011v2"))
    finally:
        await provider.aclose()
    first, second = sorted(seen.at for seen in script.seen)
    assert second - first >= 0.2


# --- failures ---------------------------------------------------------------------------------


async def test_a_server_that_is_down_makes_the_provider_unavailable() -> None:
    settings = _settings(f"http://127.0.0.1:{_free_port()}")
    crossref = CrossrefProvider(settings)
    arxiv = ArxivProvider(settings, gate=RequestGate())
    try:
        with pytest.raises(ProviderError) as crossref_error:
            await crossref.get("10.1038/srep16696")
        with pytest.raises(ProviderError) as arxiv_error:
            await arxiv.search("testing", 3)
    finally:
        await crossref.aclose()
        await arxiv.aclose()
    assert crossref_error.value.kind == "unavailable"
    assert crossref_error.value.message.startswith("crossref is unavailable (cannot connect to")
    assert "after 3 attempts" in crossref_error.value.message
    assert "STUDIO_CROSSREF_BASE_URL" in crossref_error.value.message
    assert crossref_error.value.retryable
    assert arxiv_error.value.kind == "unavailable"
    assert arxiv_error.value.message.startswith("arxiv is unavailable")


async def test_429_is_retried_then_reported_as_rate_limited(
    crossref: CrossrefProvider, script: Script
) -> None:
    script.queue = [Scripted(429, b"slow down", {"Retry-After": "0"}) for _ in range(3)]
    with pytest.raises(ProviderError) as info:
        await crossref.search("ecology", 2)
    assert len(script.seen) == 3
    assert info.value.kind == "rate_limited"
    assert info.value.retry_after_s == 0
    assert info.value.message.startswith(
        "crossref is rate limiting requests (HTTP 429 after 3 attempts)"
    )


async def test_a_short_retry_after_is_waited_for(
    crossref: CrossrefProvider, script: Script
) -> None:
    script.queue = [Scripted(429, b"slow down", {"Retry-After": "1"})]
    started = time.monotonic()
    results = await crossref.search("ecology", 2)
    assert time.monotonic() - started >= 1.0  # the backoff is 0: only Retry-After explains it
    assert len(results) == 2
    assert len(script.seen) == 2


async def test_a_long_retry_after_ends_the_tries_and_says_when_to_come_back(
    arxiv: ArxivProvider, script: Script
) -> None:
    script.queue = [Scripted(429, b"", {"Retry-After": "120"})]
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await arxiv.get("1605.08386")
    assert time.monotonic() - started < 5
    assert len(script.seen) == 1
    assert (info.value.kind, info.value.retry_after_s) == ("rate_limited", 120)
    assert "try again in 120 s" in info.value.message


async def test_a_503_with_a_long_retry_after_is_not_retried_now(
    crossref: CrossrefProvider, script: Script
) -> None:
    script.queue = [Scripted(503, b"maintenance", {"Retry-After": "3600"})]
    with pytest.raises(ProviderError) as info:
        await crossref.search("ecology", 2)
    assert len(script.seen) == 1
    assert (info.value.kind, info.value.retry_after_s) == ("unavailable", 3600)
    assert info.value.message == (
        "crossref is unavailable (HTTP 503 after 1 attempt); try again in 3600 s"
    )


async def test_a_503_then_an_answer_succeeds(
    crossref: CrossrefProvider, arxiv: ArxivProvider, script: Script
) -> None:
    script.queue = [Scripted(503, b"busy")]
    source = await crossref.get("10.1038/srep16696")
    assert source.source_id == "crossref:10.1038/srep16696"
    assert len(script.seen) == 2
    script.reset()
    script.queue = [Scripted(502, b"bad gateway"), Scripted(500, b"oops")]
    assert (await arxiv.get("1605.08386")).source_id == "arxiv:1605.08386"
    assert len(script.seen) == 3


async def test_a_server_that_keeps_failing_is_given_up_on_after_the_attempts(
    crossref: CrossrefProvider, script: Script
) -> None:
    script.queue = [Scripted(503, b"busy") for _ in range(5)]
    with pytest.raises(ProviderError) as info:
        await crossref.get("10.1038/srep16696")
    assert len(script.seen) == 3
    assert info.value.kind == "unavailable"
    assert info.value.message == (
        "crossref is unavailable (HTTP 503 after 3 attempts); try again later"
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"status": "ok"}', "no 'message' object"),
        (b'["a", "list"]', "no 'message' object"),
    ],
)
async def test_crossref_malformed_bodies_are_reported(
    crossref: CrossrefProvider, script: Script, body: bytes, detail: str
) -> None:
    script.queue = [Scripted(200, body)]
    with pytest.raises(ProviderError) as info:
        await crossref.get("10.1038/srep16696")
    assert info.value.kind == "malformed"
    assert f"crossref sent a response that could not be read ({detail})" in info.value.message
    assert len(script.seen) == 1


async def test_crossref_search_without_items_is_malformed(
    crossref: CrossrefProvider, script: Script
) -> None:
    script.queue = [Scripted(200, b'{"status": "ok", "message": {"total-results": 3}}')]
    with pytest.raises(ProviderError) as info:
        await crossref.search("ecology", 2)
    assert info.value.kind == "malformed"
    assert "'items'" in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"<feed><entry>",  # cut off
        b"<html><body>maintenance</body></html>",  # XML, but not an Atom feed
        b'<!DOCTYPE f [<!ENTITY a "aaaaaaaaaa">]><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>&a;</title></feed>",  # entity declarations are refused
    ],
)
async def test_arxiv_malformed_bodies_are_reported(
    arxiv: ArxivProvider, script: Script, body: bytes
) -> None:
    script.queue = [Scripted(200, body, {"content-type": "application/atom+xml"})]
    with pytest.raises(ProviderError) as info:
        await arxiv.get("1605.08386")
    assert info.value.kind == "malformed"
    assert info.value.message.startswith("arxiv sent a response that could not be read")


async def test_a_server_that_does_not_answer_in_time_is_unavailable(
    server: tuple[str, Script], script: Script
) -> None:
    provider = CrossrefProvider(_settings(server[0], research_timeout_s=0.3, research_attempts=2))
    script.queue = [Scripted(200, b"{}", delay_s=1.5), Scripted(200, b"{}", delay_s=1.5)]
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await provider.get("10.1038/srep16696")
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 1.4
    assert len(script.seen) == 2
    assert info.value.kind == "unavailable"
    assert "no answer from http://127.0.0.1:" in info.value.message
    assert "within 0.3 s, 2 attempts" in info.value.message


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now=now) == 7
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None) is None


def test_provider_errors_carry_an_api_code_and_status() -> None:
    error = ProviderError(ProviderName.ARXIV, "rate_limited", "arxiv is busy", retry_after_s=3)
    assert (error.code, error.http_status, error.retryable) == ("provider_rate_limited", 503, True)
    assert not ProviderError(ProviderName.ARXIV, "not_found", "x").retryable
    with pytest.raises(ValueError, match="unknown provider error kind"):
        ProviderError(ProviderName.ARXIV, "gone", "x")  # type: ignore[arg-type]


# --- fixture provider and registry ------------------------------------------------------------


async def test_fixture_samples_are_found_by_id() -> None:
    provider = FixtureProvider()
    assert provider.ids == [
        "ai-radiology-workflow",
        "convalescent-plasma-meta-analysis",
        "llm-clinical-summaries",
        "medgemma-radiology-eval",
        "prime-editing-variant-screen",
        "protein-language-model-fitness",
    ]
    source = await provider.get("LLM-Clinical-Summaries")
    _assert_plain(source)
    assert source.source_id == "fixture:llm-clinical-summaries"
    assert source.provider is ProviderName.FIXTURE
    assert source.title.startswith("Faithfulness of large language model summaries")
    assert source.authors and source.year == 2024 and source.venue
    assert source.abstract is not None and 4 <= source.abstract.count(". ") + 1 <= 6


async def test_fixture_unknown_and_bad_ids_are_reported() -> None:
    provider = FixtureProvider()
    with pytest.raises(ProviderError) as missing:
        await provider.get("no-such-sample")
    assert missing.value.kind == "not_found"
    assert "fixture has no sample work 'no-such-sample'" in missing.value.message
    assert "ai-radiology-workflow" in missing.value.message
    with pytest.raises(ProviderError) as bad:
        await provider.get("Not A Slug")
    assert bad.value.kind == "invalid_id"


async def test_fixture_search_ranks_by_word_overlap_then_id() -> None:
    provider = FixtureProvider()
    ranked = await provider.search("Radiology artificial intelligence", 5)
    assert [s.external_id for s in ranked] == ["ai-radiology-workflow", "medgemma-radiology-eval"]
    tied = await provider.search("models", 5)
    assert [s.external_id for s in tied] == [
        "llm-clinical-summaries",
        "medgemma-radiology-eval",
        "protein-language-model-fitness",
    ]
    assert [s.external_id for s in await provider.search("models", 2)] == [
        "llm-clinical-summaries",
        "medgemma-radiology-eval",
    ]
    assert await provider.search("quasar telescope", 5) == []


def test_fixture_file_says_the_samples_are_made_up() -> None:
    import json

    data = json.loads(packaged_samples_text())
    assert "made-up" in data["note"].lower()
    assert len(data["sources"]) == 6


async def test_build_providers_gives_one_per_name(settings: Settings) -> None:
    providers = build_providers(settings)
    try:
        assert set(providers) == set(ProviderName)
        for name, provider in providers.items():
            assert provider.name is name
        sample = await providers[ProviderName.FIXTURE].get("ai-radiology-workflow")
        assert sample.source_id == "fixture:ai-radiology-workflow"
    finally:
        await close_providers(providers)
