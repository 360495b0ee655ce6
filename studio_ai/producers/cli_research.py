"""`studio-ai research ...`: research sessions through the HTTP API (what an app backend
does), for trying them from a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console

from studio_ai.producers.client import ApiError, StudioClient
from studio_ai.schemas.research_api import InsightView, SessionView

research_app = typer.Typer(
    help="Research sessions: sources and cited insights.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

ApiUrl = Annotated[str, typer.Option(envvar="STUDIO_API_URL", help="Gateway base URL.")]
ApiKey = Annotated[
    str, typer.Option(envvar="STUDIO_API_KEY", help="API key (Bearer).", show_default=False)
]
DEFAULT_URL = "http://127.0.0.1:8000"

T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@contextmanager
def _client(api_url: str, api_key: str) -> Iterator[StudioClient]:
    try:
        with StudioClient(api_url, api_key) as client:
            yield client
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc


@research_app.command("create")
def research_create(
    title: Annotated[str, typer.Argument(help="What the deck is about.")],
    query: Annotated[str | None, typer.Option(help="The research question.")] = None,
    provider: Annotated[
        list[str] | None, typer.Option(help="crossref, arxiv or fixture; repeat (default: all).")
    ] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = "",
) -> None:
    """Create a session; prints its id."""
    with _client(api_url, api_key) as client:
        session = client.create_session(title, query=query, providers=provider)
    console.print(session.session_id)


@research_app.command("list")
def research_list(
    limit: Annotated[int, typer.Option(help="Sessions per page.")] = 20,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = "",
) -> None:
    """The workspace's sessions, newest first."""
    with _client(api_url, api_key) as client:
        page = client.list_sessions(limit=limit)
    for s in page.sessions:
        console.print(f"{s.session_id}  {s.created_at:%Y-%m-%d %H:%M}  {s.title}")
    if page.next_cursor:
        err.print("(more sessions: raise --limit)")


@research_app.command("attach")
def research_attach(
    session_id: str,
    provider: Annotated[str, typer.Option(help="crossref, arxiv or fixture.")],
    source: Annotated[str | None, typer.Option("--id", help="DOI, arXiv id or fixture id.")] = None,
    query: Annotated[str | None, typer.Option(help="Attach the top results of a search.")] = None,
    limit: Annotated[int, typer.Option(help="How many results of --query.")] = 3,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = "",
) -> None:
    """Attach a source by id, or the top results of a search."""
    if (source is None) == (query is None):
        raise _fail("give --id (one work) or --query (the top --limit results)")
    body: dict[str, object] = {"provider": provider}
    body.update({"id": source} if source is not None else {"query": query, "limit": limit})
    with _client(api_url, api_key) as client:
        result = client.attach(session_id, body)
    for attached in result.attached:
        console.print(f"attached {attached.source.source_id}: {attached.reference}")
    for source_id in result.already_attached:
        console.print(f"already attached {source_id}")


@research_app.command("detach")
def research_detach(
    session_id: str, source_id: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = ""
) -> None:
    """Detach a source (crossref:<doi>, arxiv:<id>, fixture:<id>)."""
    with _client(api_url, api_key) as client:
        client.detach(session_id, source_id)
    err.print(f"detached {source_id}")


@research_app.command("generate")
def research_generate(
    session_id: str,
    kind: Annotated[
        list[str], typer.Option(help="summary, bullets, outline, references or qa; repeat.")
    ],
    question: Annotated[str | None, typer.Option(help="The question, for qa.")] = None,
    model: Annotated[str | None, typer.Option(help="An installed text model.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the insights and print them.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 300.0,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = "",
) -> None:
    """Queue an insights job; with --wait, print the insights when they are on the session."""
    body: dict[str, object] = {"kinds": kind, "question": question, "model_id": model}
    with _client(api_url, api_key) as client:
        accepted = client.generate_insights(session_id, body)
        job_id = str(accepted.job_id)
        err.print(f"insights job {job_id} queued")
        if not wait:
            console.print(job_id)
            return
        job = _poll(lambda: _ended(client, job_id), timeout, f"job {job_id} to end")
        if job.status.value != "completed":
            detail = f": {job.error.code}: {job.error.message}" if job.error else ""
            raise _fail(f"job {job_id} {job.status.value}{detail}")
        insights = _poll(
            lambda: _insights_of(client.get_session(session_id), job_id),
            timeout,
            "the insights to reach the session",
        )
    for insight in insights:
        _print_insight(insight)


@research_app.command("show")
def research_show(session_id: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = "") -> None:
    """The session's sources and insights."""
    with _client(api_url, api_key) as client:
        session = client.get_session(session_id)
    console.print(f"[bold]{session.title}[/bold] ({session.session_id})")
    for attached in session.sources:
        console.print(f"  {attached.source.source_id}: {attached.reference}")
    for insight in session.insights:
        _print_insight(insight)


@research_app.command("export")
def research_export(
    session_id: str,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = "",
) -> None:
    """Slide-ready markdown with a references list."""
    with _client(api_url, api_key) as client:
        text = client.export_session(session_id)
    if output is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


def _ended(client: StudioClient, job_id: str):  # type: ignore[no-untyped-def]
    job = client.get_job(job_id)
    return job if job.status.terminal else None


def _insights_of(session: SessionView, job_id: str) -> list[InsightView] | None:
    found = [i for i in session.insights if str(i.job_id) == job_id]
    return found or None


def _poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise _fail(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.3)


def _print_insight(insight: InsightView) -> None:
    by = insight.generator.value + (f" · {insight.model_id}" if insight.model_id else "")
    console.print(f"\n[bold]{insight.kind.value}[/bold] ({by})", highlight=False)
    for item in insight.items:
        cited = f" [{'; '.join(item.citations)}]" if item.citations else ""
        console.print(f"{'  ' * item.level}- {item.text}{cited}", markup=False, highlight=False)
    if insight.note:
        console.print(f"  note: {insight.note}", markup=False, highlight=False)
    for flagged in insight.flagged_citations:
        console.print(
            f"  flagged: {flagged.citation} ({flagged.reason})", markup=False, highlight=False
        )
    if insight.fallback_reason:
        console.print(f"  fallback: {insight.fallback_reason}", markup=False, highlight=False)
