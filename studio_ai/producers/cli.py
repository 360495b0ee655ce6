"""The `studio-ai` command line: operators' and developers' entry point."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from studio_ai.domain.errors import DomainError
from studio_ai.domain.identity import Role, validate_name
from studio_ai.producers.cli_audit import audit_app
from studio_ai.producers.cli_docs import docs_app
from studio_ai.producers.cli_operations import dlq_app, replay_projection, topics_describe
from studio_ai.producers.cli_receipts import receipts_app
from studio_ai.producers.cli_research import research_app
from studio_ai.producers.cli_workspaces import workspaces_app
from studio_ai.producers.client import ApiError, StudioClient
from studio_ai.runtime.settings import Settings

app = typer.Typer(help="studio-ai: the AI model layer of Databiomics Studio.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
models_app = typer.Typer(help="Model catalog and installation.", no_args_is_help=True)
worker_app = typer.Typer(help="Consumer processes.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
dev_app = typer.Typer(help="Local development.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inference jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
images_app = typer.Typer(help="Uploaded images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(worker_app, name="worker")
app.add_typer(topics_app, name="topics")
app.add_typer(dev_app, name="dev")
app.add_typer(audit_app, name="audit")
app.add_typer(receipts_app, name="receipts")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(research_app, name="research")
app.add_typer(dlq_app, name="dlq")
app.command("replay")(replay_projection)
topics_app.command("describe")(topics_describe)
app.add_typer(docs_app, name="docs")

console = Console()
err = Console(stderr=True)

ApiUrl = Annotated[str, typer.Option(envvar="STUDIO_API_URL", help="Gateway base URL.")]
ApiKey = Annotated[
    str, typer.Option(envvar="STUDIO_API_KEY", help="API key (Bearer).", show_default=False)
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def _configure_logging(settings: Settings) -> None:
    from studio_ai.runtime.logging import configure_logging

    configure_logging(settings.log_level, json_logs=settings.log_json)


@keys_app.command("create")
def keys_create(
    workspace: Annotated[str, typer.Option(help="Workspace id.")],
    user: Annotated[str, typer.Option(help="User id.")],
    role: Annotated[
        Role, typer.Option(help="admin, member, or operator (assigns plans under /operator).")
    ] = Role.MEMBER,
    operator: Annotated[
        str, typer.Option(help="Who creates the key (recorded in the audit log).")
    ] = "operator",
) -> None:
    """Create an API key; it is printed once and stored only as a hash. Its creation is
    audited (key id only): without Kafka no key is created."""
    import uuid

    from aiokafka.errors import KafkaError

    from studio_ai.producers.keys import KeyNotAudited, create_api_key
    from studio_ai.producers.operator_session import operator_session
    from studio_ai.runtime.broker import ensure_topics
    from studio_ai.schemas.topics import AUDIT_RECORDED

    settings = Settings()

    async def create() -> tuple[str, str]:
        by = f"operator:{validate_name('user', operator)}"
        await ensure_topics(settings, [AUDIT_RECORDED])
        async with operator_session(settings, client_id="studio-ai-cli") as session:
            return await create_api_key(
                session.store,
                session.publisher,
                workspace_id=workspace,
                user_id=user,
                role=role,
                created_by=by,
                correlation_id=str(uuid.uuid4()),
            )

    try:
        key_id, key = asyncio.run(create())
    except DomainError as exc:
        raise _fail(exc.message) from exc
    except PyMongoError as exc:
        raise _fail(f"the store is not reachable (STUDIO_MONGO_URL): {exc}") from exc
    except KafkaError as exc:
        raise _fail(
            f"no key was created: the broker is not reachable at {settings.kafka_bootstrap} "
            f"(STUDIO_KAFKA_BOOTSTRAP), and every key creation is audited: {exc}"
        ) from exc
    except KeyNotAudited as exc:
        raise _fail(
            f"no key was created: its audit record could not be published ({exc}); check the "
            f"broker at {settings.kafka_bootstrap} and run the command again"
        ) from exc
    err.print(f"created key {key_id} for user {user!r} ({role.value}) in workspace {workspace!r}")
    err.print("store it now: it is not shown again")
    console.print(key, highlight=False, soft_wrap=True)


@models_app.command("list")
def models_list(api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = "") -> None:
    """The workspace's models with their availability."""
    try:
        with StudioClient(api_url, api_key) as client:
            models = client.list_models().models
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc
    table = Table(title=f"models of this workspace ({api_url})")
    table.add_column("model", overflow="fold")
    for column in ("task", "status", "progress / revision", "engine", "size"):
        table.add_column(column, overflow="fold")
    for view in models:
        status = view.status.value
        if view.progress:
            detail = f"{view.progress.percent:.1f}% of {view.progress.bytes_total:,} B"
        elif view.installation:
            detail = view.installation.revision_sha[:12]
        elif view.failure:
            detail = view.failure.reason[:60]
        else:
            detail = ""
        color = {"installed": "green", "downloading": "yellow", "failed": "red"}.get(
            status, "white"
        )
        table.add_row(
            view.model.model_id,
            view.model.task.value,
            f"[{color}]{status}[/{color}]",
            detail,
            view.runtime.engine.value if view.runtime else view.model.default_engine.value,
            _size(view.model.approx_size_bytes),
        )
    console.print(table)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@models_app.command("download")
def models_download(
    model_id: Annotated[
        str, typer.Argument(help="Catalog id, e.g. meta-llama/Llama-3.2-1B-Instruct.")
    ],
    transport: Annotated[str, typer.Option(help="hf_api, hf_cli, mirror or local.")] = "hf_api",
    revision: Annotated[
        str | None, typer.Option(help="Revision; default: catalog pin or main.")
    ] = None,
    local_dir: Annotated[
        Path | None,
        typer.Option(help="Download on this machine into this folder, without the gateway."),
    ] = None,
    follow: Annotated[bool, typer.Option(help="Show live progress until the end.")] = True,
    repo: Annotated[
        str | None, typer.Option(help="With --local-dir: hub repo, when it differs from the id.")
    ] = None,
    gated: Annotated[
        bool, typer.Option(help="With --local-dir: the repo is gated (needs HF_TOKEN).")
    ] = False,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Install a model through the gateway (live progress), or directly with --local-dir."""
    if local_dir is not None:
        from studio_ai.producers.direct_download import download_here

        raise typer.Exit(
            download_here(
                model_id, transport, revision, local_dir, repo=repo, gated=gated, console=err
            )
        )
    try:
        with StudioClient(api_url, api_key) as client:
            accepted = client.download(model_id, transport, revision)
            err.print(f"download {accepted.download_id} of {model_id} accepted ({transport})")
            err.print(f"same download by hand on a worker node: {accepted.python_client_command}")
            if not follow:
                return
            final = _follow(client, model_id)
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc
    if final.status.value == "installed" and final.installation:
        err.print(
            f"[green]installed[/green] {model_id} at {final.installation.local_path} "
            f"(revision {final.installation.revision_sha})"
        )
        return
    reason = final.failure.reason if final.failure else f"status {final.status.value}"
    raise _fail(f"{model_id}: {reason}")


def _follow(client: StudioClient, model_id: str):  # type: ignore[no-untyped-def]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(model_id, total=None)
        final = None
        for _, view in client.follow_download(model_id):
            final = view
            if view.progress and view.progress.bytes_total:
                progress.update(
                    task, total=view.progress.bytes_total, completed=view.progress.bytes_done
                )
            if view.installation:
                progress.update(
                    task, total=view.installation.size_bytes, completed=view.installation.size_bytes
                )
    assert final is not None
    return final


@models_app.command("cancel")
def models_cancel(
    model_id: str, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Stop a download in progress."""
    try:
        with StudioClient(api_url, api_key) as client:
            accepted = client.cancel(model_id)
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc
    err.print(f"cancelling download {accepted.download_id} of {model_id}")


@jobs_app.command("submit")
def jobs_submit(
    prompt: Annotated[str, typer.Argument(help="The prompt, or the question for --task qa.")],
    model: Annotated[str, typer.Option(help="Model id.")] = "studio-ai/extractive",
    task: Annotated[str, typer.Option(help="summary, bullets, qa or free.")] = "free",
    context: Annotated[
        list[str] | None, typer.Option(help="Context ref (job:<id> or note:<id>); repeat.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens to generate.")] = None,
    watch: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Submit a text job; prints its id (and follows it with --watch)."""
    body: dict[str, object] = {"model_id": model, "prompt": prompt, "task": task}
    if context:
        body["context_refs"] = context
    if max_tokens:
        body["max_tokens"] = max_tokens
    try:
        with StudioClient(api_url, api_key) as client:
            accepted = client.generate_text(body)
            err.print(f"job {accepted.job_id} queued on {accepted.resolved_model_id}")
            if accepted.fallback_reason:
                err.print(f"[yellow]fallback:[/yellow] {accepted.fallback_reason}")
            console.print(str(accepted.job_id)) if not watch else None
            if watch:
                _watch_job(client, str(accepted.job_id))
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc


@jobs_app.command("watch")
def jobs_watch(
    job_id: str, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Follow a job live: status and tokens, then its result or error."""
    try:
        with StudioClient(api_url, api_key) as client:
            _watch_job(client, job_id)
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Cancel a queued or running job."""
    try:
        with StudioClient(api_url, api_key) as client:
            client.cancel_job(job_id)
    except ApiError as exc:
        raise _fail(exc.detail or str(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise _fail(f"cannot reach the gateway at {api_url}: {exc}") from exc
    err.print(f"cancelling job {job_id}")


def _watch_job(client: StudioClient, job_id: str) -> None:
    final = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        console=err,
    ) as progress:
        bar = progress.add_task(f"job {job_id[:8]}", total=None, detail="queued")
        for _, view in client.follow_job(job_id):
            final = view
            progress.update(
                bar,
                total=view.progress.max_tokens,
                completed=view.progress.tokens_generated,
                detail=f"{view.status.value} · {view.progress.tokens_generated} tokens · "
                f"{view.resolved_model_id} ({view.engine.value})",
            )
    if final is None:
        raise _fail("the job stream ended without a status")
    if final.fallback_reason:
        err.print(f"[yellow]fallback:[/yellow] {final.fallback_reason}")
    if final.result is not None:
        console.print(final.result.text)
        t = final.timings
        total = (
            (t.finished_at - t.queued_at).total_seconds() if t.finished_at and t.queued_at else 0.0
        )
        err.print(
            f"[green]{final.status.value}[/green] in {total:.2f}s · {final.usage.prompt_tokens} "
            f"prompt + {final.usage.completion_tokens} completion tokens · finish "
            f"{final.result.finish_reason}"
        )
        return
    if final.error is not None:
        raise _fail(
            f"{final.error.code}: {final.error.message}"
            f"{' (retryable)' if final.error.retryable else ''}"
        )
    raise _fail(f"job {final.status.value}")


@images_app.command("sweep")
def images_sweep(
    every: Annotated[
        float | None, typer.Option(help="Repeat every this many seconds (default: once).")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="Act as if it were this ISO 8601 time; for checks and tests."),
    ] = None,
) -> None:
    """Delete images whose retention ended, and unconsented ones no job uses any more; each
    deletion is audited."""
    from datetime import UTC, datetime

    from aiokafka.errors import KafkaError

    from studio_ai.producers.image_sweep import run_sweeper

    if now is not None and every is not None:
        raise _fail("--now is for a single sweep: leave out --every")
    try:
        as_of = None if now is None else datetime.fromisoformat(now)
    except ValueError as exc:
        raise _fail(f"--now {now!r} is not an ISO 8601 time, e.g. 2025-01-31T12:00:00Z") from exc
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    settings = Settings()
    _configure_logging(settings)
    try:
        asyncio.run(run_sweeper(settings, every_s=every, now=as_of, report=err.print))
    except PyMongoError as exc:
        raise _fail(f"the store is not reachable: {exc}") from exc
    except KafkaError as exc:
        raise _fail(
            f"the broker is not reachable at {settings.kafka_bootstrap} ({exc}); deletions are "
            "audited through it: run the sweep again once it is, and check the audit log for "
            "images this sweep deleted before the error"
        ) from exc


@app.command("gateway")
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Run the HTTP gateway."""
    import uvicorn

    from studio_ai.producers.gateway.app import create_app

    settings = Settings()
    _configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.gateway_host,
        port=port or settings.gateway_port,
        log_level="warning",
    )


@worker_app.command("run")
def worker_run(
    group: Annotated[list[str], typer.Option(help="Consumer group(s) to run; repeat the option.")],
    metrics_port: Annotated[
        int | None, typer.Option(help="Port for /metrics and /healthz.")
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(
            help="Run the (single) group under this Kafka group id instead, e.g. a new id to "
            "replay a projection's topics from offset 0.",
        ),
    ] = None,
) -> None:
    """Run one or more consumer groups (one per Kubernetes Deployment in production)."""
    from studio_ai.consumers.app import GROUPS, unknown_groups
    from studio_ai.consumers.runner import run_consumers

    if bad := unknown_groups(group):
        raise _fail(f"unknown group(s) {', '.join(bad)}; known: {', '.join(GROUPS)}")
    if group_id is not None and len(group) != 1:
        raise _fail("--group-id renames one group: give exactly one --group with it")
    settings = Settings()
    _configure_logging(settings)
    group_ids = {group[0]: group_id} if group_id else None
    asyncio.run(run_consumers(settings, group, metrics_port=metrics_port, group_ids=group_ids))


@worker_app.command("inference")
def worker_inference(
    pool: Annotated[list[str], typer.Option(help="Pool(s) to serve; repeat the option.")],
    max_in_flight: Annotated[
        int | None,
        typer.Option(help="Jobs in flight per pool (default STUDIO_INFERENCE_MAX_IN_FLIGHT)."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port for /metrics and /healthz.")
    ] = None,
    preload: Annotated[
        bool, typer.Option(help="Load the pools' installed models at start.")
    ] = True,
) -> None:
    """Run an inference worker for a pool: it reads only ai.inference-requested.<pool>.v1."""
    from studio_ai.consumers.inference_worker.process import run_inference_worker
    from studio_ai.domain.model_ids import validate_pool

    try:
        for name in pool:
            validate_pool(name)
    except DomainError as exc:
        raise _fail(exc.message) from exc
    settings = Settings()
    _configure_logging(settings)
    asyncio.run(
        run_inference_worker(
            settings, pool, max_in_flight=max_in_flight, metrics_port=metrics_port, preload=preload
        )
    )


@worker_app.command("groups")
def worker_groups() -> None:
    """List the consumer groups."""
    from studio_ai.consumers.app import GROUPS

    for name in GROUPS:
        console.print(name)


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic (and its DLQ) that does not exist yet."""
    from studio_ai.runtime.broker import ensure_topics

    settings = Settings()
    try:
        created = asyncio.run(ensure_topics(settings))
    except KafkaError as exc:
        raise _fail(f"Kafka is not reachable at {settings.kafka_bootstrap}: {exc}") from exc
    err.print(f"created {len(created)} topic(s): {', '.join(created) or 'none needed'}")


@dev_app.command("up")
def dev_up(
    hub_port: Annotated[int, typer.Option(help="Port of the local hub mirror.")] = 8900,
) -> None:
    """Run a local hub mirror with tiny models, the gateway and every consumer group."""
    from studio_ai.producers.dev_stack import run_dev_stack

    raise typer.Exit(run_dev_stack(Settings(), hub_port=hub_port, console=err))


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    app()
