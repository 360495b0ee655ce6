"""`studio-ai models download ID --local-dir D`: the same download, by hand, on this machine."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from studio_ai.adapters.model_download import ModelDownloader
from studio_ai.domain.errors import DomainError
from studio_ai.domain.model_ids import validate_model_id, validate_revision
from studio_ai.runtime.catalog_files import load_catalog
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import (
    DownloadProgress,
    EngineKind,
    Modality,
    ModelDownloadRequested,
    ModelInstalled,
    ModelTask,
    Transport,
)


def download_here(
    model_id: str,
    transport: str,
    revision: str | None,
    local_dir: Path,
    *,
    repo: str | None = None,
    gated: bool = False,
    console: Console,
) -> int:
    """Download into `local_dir`; returns the process exit code."""
    try:
        validate_model_id(model_id)
        if repo:
            validate_model_id(repo)
        if revision:
            validate_revision(revision)
        chosen = Transport(transport)
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        return 2
    except ValueError:
        console.print(
            f"[red]error:[/red] unknown transport {transport!r}; use one of "
            f"{', '.join(t.value for t in Transport)}"
        )
        return 2
    local_dir = local_dir.resolve()
    settings = Settings().model_copy(update={"models_dir": local_dir.parent})
    entry = next((e for e in load_catalog(settings) if e.model_id == model_id), None)
    request = ModelDownloadRequested(
        download_id=uuid.uuid4(),
        model_id=model_id,
        hub_repo_id=repo or (entry.hub_repo_id if entry else model_id),
        revision=revision or (entry.revision if entry else None),
        transport=chosen,
        gated=gated or (entry.gated if entry else False),
        local_dir=local_dir.name,
        modality=entry.modality if entry else Modality.TEXT,
        task=entry.task if entry else ModelTask.FAST_TEXT,
        default_engine=entry.default_engine if entry else EngineKind.TRANSFORMERS,
    )
    downloader = ModelDownloader(
        settings, ConsumerMetrics.create(CollectorRegistry()), by_revision=False
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(model_id, total=None)

        async def on_progress(p: DownloadProgress) -> None:
            progress.update(task, total=p.bytes_total or None, completed=p.bytes_done)

        async def never() -> bool:
            return False

        outcome = asyncio.run(
            downloader.download(request, on_progress=on_progress, cancel_requested=never)
        )
    if isinstance(outcome, ModelInstalled):
        console.print(
            f"[green]installed[/green] {model_id} at {outcome.local_path} (revision "
            f"{outcome.revision_sha}, {outcome.verified_files} files verified)"
        )
        return 0
    reason = getattr(outcome, "reason", "cancelled")
    console.print(f"[red]failed:[/red] {reason}")
    return 1
