"""A local stand-in for api.crossref.org and export.arxiv.org that answers with recorded real
responses (tests/fixtures/research, see its SOURCES.md), so the real provider code runs
against real bodies offline. Knobs make it fail like the real services do: a status for
every request (503, 429 with Retry-After), a malformed body, or a slow answer.

`with ResearchServer(folder) as server:` then point STUDIO_CROSSREF_BASE_URL and
STUDIO_ARXIV_BASE_URL at `server.url`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from studio_ai.devkit.background import BackgroundServer

_JSON = "application/json"
_ATOM = "application/atom+xml; charset=utf-8"
_ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?$")

# Crossref searches: words of the query -> the recorded answer.
_CROSSREF_SEARCHES = (
    ("prime editing", "crossref_works_query_title_pooled_prime_editing.json"),
    ("plasma", "crossref_works_query_title_sars_cov_2_plasma.json"),
    ("boettiger", "crossref_works_query_ecology_author_boettiger.json"),
    ("ecology", "crossref_works_query_ecology_rows2.json"),
)
_CROSSREF_WORKS = {
    "10.1038/srep16696": "crossref_work_10.1038_srep16696.json",
    "10.1038/s42256-024-00832-8": "crossref_work_10.1038_s42256-024-00832-8.json",
}
_ARXIV_IDS = {
    "1605.08386": "arxiv_id_list_1605.08386.xml",
    "1111.2011": "arxiv_legacy_id_list_1111.2011v2.xml",
}
_ARXIV_SEARCHES = (
    ("del_maestro", "arxiv_legacy_query_au_del_maestro.xml"),
    ("testing", "arxiv_query_testing.xml"),
)


@dataclass(frozen=True)
class ResearchKnobs:
    fail_status: int | None = None  # answer every request with this status
    retry_after: str | None = None  # the Retry-After header of those answers
    malformed: bool = False  # cut every body in half
    delay_s: float = 0.0


class ResearchServer(BackgroundServer):
    thread_name = "research-server"

    def __init__(self, fixtures: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.fixtures = fixtures
        self.knobs = ResearchKnobs()
        self.requests: list[str] = []  # path?query of every request, in order
        self.user_agents: list[str] = []
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/works", self._works),
                Route("/works/{doi:path}", self._work),
                Route("/api/query", self._arxiv),
            ]
        )

    # --- control ----------------------------------------------------------------------------

    def configure(self, **changes: object) -> None:
        with self._lock:
            self.knobs = replace(self.knobs, **changes)  # type: ignore[arg-type]

    def reset(self) -> None:
        with self._lock:
            self.knobs = ResearchKnobs()
            self.requests.clear()
            self.user_agents.clear()

    # --- routes -----------------------------------------------------------------------------

    async def _works(self, request: Request) -> Response:
        words = " ".join(
            v.lower() for k, v in request.query_params.items() if k.startswith("query")
        )
        name = next(
            (file for key, file in _CROSSREF_SEARCHES if key in words),
            "crossref_works_query_empty.json",
        )
        return await self._answer(request, name, _JSON)

    async def _work(self, request: Request) -> Response:
        doi = str(request.path_params["doi"]).lower()
        name = _CROSSREF_WORKS.get(doi)
        if name is None:
            return await self._answer(
                request, "crossref_work_not_found_404.txt", "text/plain", status=404
            )
        return await self._answer(request, name, _JSON)

    async def _arxiv(self, request: Request) -> Response:
        id_list = request.query_params.get("id_list", "")
        if id_list:
            bare = id_list.split(",")[0].strip()
            if not _ARXIV_ID.match(bare):
                return await self._answer(request, "arxiv_error_bad_id.xml", _ATOM, status=400)
            name = _ARXIV_IDS.get(re.sub(r"v\d+$", "", bare), "arxiv_empty.xml")
            return await self._answer(request, name, _ATOM)
        query = request.query_params.get("search_query", "").lower()
        name = next((file for key, file in _ARXIV_SEARCHES if key in query), "arxiv_empty.xml")
        return await self._answer(request, name, _ATOM)

    async def _answer(
        self, request: Request, name: str, media_type: str, *, status: int = 200
    ) -> Response:
        with self._lock:
            knobs = self.knobs
            self.requests.append(f"{request.url.path}?{request.url.query}")
            self.user_agents.append(request.headers.get("user-agent", ""))
        if knobs.delay_s:
            await asyncio.sleep(knobs.delay_s)
        if knobs.fail_status is not None:
            headers = {"Retry-After": knobs.retry_after} if knobs.retry_after else None
            return Response(
                f"recorded-server failure {knobs.fail_status}",
                status_code=knobs.fail_status,
                headers=headers,
                media_type="text/plain",
            )
        body = (self.fixtures / name).read_bytes()
        if knobs.malformed:
            body = body[: len(body) // 2]
        return Response(body, status_code=status, media_type=media_type)
