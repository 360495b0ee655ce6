"""Runs one model download to its end: plan, transfer in a child process, verify.

Progress is measured on disk (so every transport reports it the same way) and handed to a
callback at a bounded rate; a cancel flag is polled on the same tick. Transient failures
(source unreachable, a truncated transfer, a checksum mismatch) are retried with backoff and
resume from the files already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from studio_ai.adapters.model_transfer import (
    TransferFailed,
    TransferJob,
    TransferPlan,
    TransferSource,
    bytes_on_disk,
    disk_full,
    plan_transfer,
    remove_abandoned_partials,
    transfer_argv,
    transfer_env,
    verify_files,
)
from studio_ai.domain.model_installation import percent_done
from studio_ai.runtime.delivery import TRANSIENT_ERRORS
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import (
    DownloadFailureCode,
    DownloadProgress,
    InstalledFile,
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadRequested,
    ModelInstalled,
    Transport,
)

log = logging.getLogger(__name__)

_COMMIT = re.compile(r"[0-9a-f]{40}")

DownloadOutcome = ModelInstalled | ModelDownloadFailed | ModelDownloadCancelled
ProgressCallback = Callable[[DownloadProgress], Awaitable[None]]
CancelCheck = Callable[[], Awaitable[bool]]


class _Cancelled(Exception):
    pass


def _die_with_parent() -> None:
    # The child must not outlive a downloader that is killed: the next downloader resumes
    # the same files, and two writers would fight over them.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class ModelDownloader:
    """Downloads into `<models_dir>/<org>--<name>/<commit sha>`: a verified revision is never
    rewritten by a later download of another revision (workspaces share the files).
    `by_revision=False` writes into `<models_dir>/<dir_name>` itself (downloads by hand)."""

    def __init__(
        self, settings: Settings, metrics: ConsumerMetrics, *, by_revision: bool = True
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._by_revision = by_revision

    def source_for(self, transport: Transport) -> TransferSource:
        s = self._settings
        token = s.hf_token.get_secret_value() if s.hf_token else None
        if transport is Transport.MIRROR:
            mirror_token = s.mirror_token.get_secret_value() if s.mirror_token else None
            if not s.mirror_endpoint:
                raise TransferFailed(
                    DownloadFailureCode.SOURCE_NOT_CONFIGURED,
                    "the mirror transport needs STUDIO_MIRROR_ENDPOINT, the URL of a "
                    "hub-compatible mirror",
                    retryable=False,
                )
            return TransferSource(
                transport, endpoint=s.mirror_endpoint.rstrip("/"), token=mirror_token
            )
        if transport is Transport.LOCAL:
            return TransferSource(transport, staging_path=s.staging_dir)
        return TransferSource(transport, endpoint=s.hf_endpoint.rstrip("/"), token=token)

    def target_dir(self, dir_name: str, commit_sha: str = "unknown") -> Path:
        root = self._settings.models_dir.resolve()
        model_root = (root / dir_name).resolve()
        if model_root.parent != root:
            raise TransferFailed(
                DownloadFailureCode.TRANSFER_FAILED,
                f"refusing to install into {model_root}: it is not directly inside {root}",
                retryable=False,
            )
        if not self._by_revision:
            return model_root
        if commit_sha == "unknown":
            return model_root / "unversioned"
        if not _COMMIT.fullmatch(commit_sha):
            raise TransferFailed(
                DownloadFailureCode.TRANSFER_FAILED,
                f"the source named commit {commit_sha[:60]!r}, which is not a 40-hex sha; "
                "refusing to use it as a folder name",
                retryable=False,
            )
        target = model_root / commit_sha
        if target.parent != model_root:
            raise TransferFailed(
                DownloadFailureCode.TRANSFER_FAILED,
                f"refusing to install into {target}: it is not directly inside {root}",
                retryable=False,
            )
        return target

    async def download(
        self,
        request: ModelDownloadRequested,
        *,
        on_progress: ProgressCallback,
        cancel_requested: CancelCheck,
    ) -> DownloadOutcome:
        started = time.monotonic()
        self._metrics.downloads_active.inc()
        try:
            outcome = await self._download(request, on_progress, cancel_requested)
        finally:
            self._metrics.downloads_active.dec()
        kind = {
            ModelInstalled: "installed",
            ModelDownloadFailed: "failed",
            ModelDownloadCancelled: "cancelled",
        }[type(outcome)]
        self._metrics.downloads_finished.labels(outcome=kind, transport=request.transport).inc()
        self._metrics.download_seconds.labels(transport=request.transport).observe(
            time.monotonic() - started
        )
        return outcome

    async def _download(
        self,
        request: ModelDownloadRequested,
        on_progress: ProgressCallback,
        cancel_requested: CancelCheck,
    ) -> DownloadOutcome:
        attempts = self._settings.download_attempts
        plan: TransferPlan | None = None
        local_dir: Path | None = None
        for attempt in range(1, attempts + 1):
            try:
                source = self.source_for(request.transport)
                if plan is None:
                    plan = await asyncio.wait_for(
                        asyncio.to_thread(
                            plan_transfer,
                            source,
                            request.hub_repo_id,
                            request.revision,
                            dir_name=request.local_dir,
                            gated=request.gated,
                        ),
                        timeout=self._settings.download_metadata_timeout_s,
                    )
                local_dir = self.target_dir(request.local_dir, plan.commit_sha)
                async with _exclusive(local_dir, cancel_requested):
                    await self._transfer(
                        request, source, plan, local_dir, on_progress, cancel_requested
                    )
                    verified = await asyncio.to_thread(verify_files, local_dir, plan)
                return self._installed(request, plan, local_dir, verified)
            except _Cancelled:
                done = bytes_on_disk(local_dir, plan)[0] if local_dir and plan else 0
                return ModelDownloadCancelled(
                    download_id=request.download_id, model_id=request.model_id, bytes_done=done
                )
            except TimeoutError:
                failure = TransferFailed(
                    DownloadFailureCode.SOURCE_UNREACHABLE,
                    f"the source did not answer within {self._settings.download_metadata_timeout_s}"
                    " s; check the endpoint and the network, then ask again",
                    retryable=True,
                )
            except TransferFailed as exc:
                failure = exc
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                failure = (
                    disk_full(exc)
                    if exc.errno == 28
                    else TransferFailed(
                        DownloadFailureCode.TRANSFER_FAILED,
                        f"file system error: {exc}",
                        retryable=True,
                    )
                )
            except TRANSIENT_ERRORS:
                raise  # the store or the broker is down: the delivery guard retries the message
            except Exception as exc:  # a bug must not leave the model stuck in `downloading`
                log.exception("unexpected error in a model download")
                failure = TransferFailed(
                    DownloadFailureCode.TRANSFER_FAILED,
                    f"unexpected {type(exc).__name__} during the download: {exc}",
                    retryable=True,
                )
            log.warning(
                "model download attempt failed",
                extra={
                    "model_id": request.model_id,
                    "attempt": attempt,
                    "code": failure.code.value,
                    "reason": failure.reason,
                },
            )
            if not failure.retryable or attempt == attempts:
                return ModelDownloadFailed(
                    download_id=request.download_id,
                    model_id=request.model_id,
                    code=failure.code,
                    reason=failure.reason
                    + (f" (after {attempt} attempts)" if failure.retryable and attempt > 1 else ""),
                    retryable=failure.retryable,
                )
            if await cancel_requested():
                return ModelDownloadCancelled(
                    download_id=request.download_id, model_id=request.model_id, bytes_done=0
                )
            await asyncio.sleep(self._settings.download_retry_backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def _transfer(
        self,
        request: ModelDownloadRequested,
        source: TransferSource,
        plan: TransferPlan,
        local_dir: Path,
        on_progress: ProgressCallback,
        cancel_requested: CancelCheck,
    ) -> None:
        job = TransferJob(
            transport=request.transport,
            repo_id=plan.repo_id,
            commit_sha=plan.commit_sha,
            files=[f.path for f in plan.files],
            local_dir=str(local_dir),
            endpoint=source.endpoint,
            staging_root=str(source.staging_path / request.local_dir)
            if source.staging_path
            else None,
        )
        await asyncio.to_thread(remove_abandoned_partials, local_dir)
        proc = await asyncio.create_subprocess_exec(
            *transfer_argv(job),
            env=transfer_env(job, source.token),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        assert proc.stderr is not None
        stderr_task = asyncio.create_task(proc.stderr.read())
        last: tuple[int, int] | None = None
        try:
            while True:
                try:
                    await asyncio.wait_for(
                        asyncio.shield(proc.wait()),
                        timeout=self._settings.download_progress_interval_s,
                    )
                    break
                except TimeoutError:
                    pass
                last = await self._report(plan, local_dir, on_progress, last)
                if await cancel_requested():
                    raise _Cancelled
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        finally:
            stderr = (await stderr_task).decode("utf-8", "replace")
        await self._report(plan, local_dir, on_progress, last)
        if proc.returncode != 0:
            raise _classify_child_failure(proc.returncode or -1, stderr, source)

    async def _report(
        self,
        plan: TransferPlan,
        local_dir: Path,
        on_progress: ProgressCallback,
        last: tuple[int, int] | None,
    ) -> tuple[int, int]:
        done = await asyncio.to_thread(bytes_on_disk, local_dir, plan)
        if done != last:
            previous = last[0] if last is not None else 0
            if done[0] > previous:
                self._metrics.download_bytes.inc(done[0] - previous)
            progress = DownloadProgress(
                bytes_done=done[0],
                bytes_total=plan.total_bytes,
                files_done=done[1],
                files_total=len(plan.files),
                percent=percent_done(done[0], plan.total_bytes),
            )
            try:
                await on_progress(progress)
            except TRANSIENT_ERRORS as exc:
                # Progress is informative: a broker blip must not stop the download.
                log.warning("progress not published", extra={"error": repr(exc)})
        return done

    def _installed(
        self,
        request: ModelDownloadRequested,
        plan: TransferPlan,
        local_dir: Path,
        verified: dict[str, str | None],
    ) -> ModelInstalled:
        checked = sum(1 for f in plan.files if f.sha256 or (f.blob_id and len(f.blob_id) == 40))
        return ModelInstalled(
            download_id=request.download_id,
            model_id=request.model_id,
            local_path=str(local_dir),
            revision_sha=plan.commit_sha,
            size_bytes=plan.total_bytes,
            files=[
                InstalledFile(path=f.path, size=f.size, sha256=verified.get(f.path))
                for f in plan.files
            ],
            verified_files=checked,
            transport=request.transport,
            modality=request.modality,
            engine=request.default_engine,
            installed_at=datetime.now(UTC),
        )


@contextlib.asynccontextmanager
async def _exclusive(local_dir: Path, cancel_requested: CancelCheck) -> AsyncIterator[None]:
    """Hold `<local_dir>.lock` so that one transfer at a time writes into a folder.

    Two downloaders can hold the same request for a moment (Kafka hands an uncommitted message
    to another member during a rebalance); the second waits here, then finds the files done.
    """
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    with (local_dir.parent / f"{local_dir.name}.lock").open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if await cancel_requested():
                    raise _Cancelled from None
                await asyncio.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _classify_child_failure(code: int, stderr: str, source: TransferSource) -> TransferFailed:
    tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-3:])[-600:]
    if code == 28 or "No space left on device" in stderr:
        return disk_full(OSError(28, "No space left on device"))
    lowered = stderr.lower()
    if (
        "gatedrepoerror" in lowered
        or "401 client error" in lowered
        or "403 client error" in lowered
    ):
        return TransferFailed(
            DownloadFailureCode.GATED_NO_TOKEN,
            "the source refused the files: the model is gated and the downloader has no token "
            "with access; accept the license on the hub, then set STUDIO_HF_TOKEN (or HF_TOKEN)",
            retryable=False,
        )
    if any(word in lowered for word in ("connect", "timeout", "timed out", " 50", "unreachable")):
        return TransferFailed(
            DownloadFailureCode.SOURCE_UNREACHABLE,
            f"{source.endpoint or 'the source'} became unreachable during the transfer ({tail})",
            retryable=True,
        )
    return TransferFailed(
        DownloadFailureCode.TRANSFER_FAILED,
        f"the {source.transport.value} transfer exited with code {code}: {tail or 'no output'}",
        retryable=True,
    )
