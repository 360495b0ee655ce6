"""Fetching a model's files: plan (what to fetch, with checksums), transfer, verify.

Four transports share one plan/verify path:
- hf_api: huggingface_hub.snapshot_download against the configured hub;
- hf_cli: the hub's own `hf download` command in a subprocess;
- mirror: snapshot_download against a hub-compatible mirror (air-gapped sites);
- local: hard-link (same filesystem) or copy from a pre-staged folder.

The transfer itself runs in a child process (`python -m studio_ai.adapters.model_transfer`)
so that it can be cancelled, and so that a killed downloader leaves files that the next
attempt resumes (snapshot_download resumes `.incomplete` files; local copies resume by file).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio_ai.schemas.models import DownloadFailureCode, Transport

# Weights, configuration, tokenizer and processor files: nothing else is fetched.
ALLOW_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.json",
    "*.jinja",
    "tokenizer.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
)
IGNORE_PATTERNS: tuple[str, ...] = ("original/*", ".*", "*/.*")
PARTIAL_SUFFIX = ".studio-partial"
_CHUNK = 8 * 1024 * 1024


class TransferFailed(Exception):
    """A download that cannot finish; `reason` says why and what to do."""

    def __init__(self, code: DownloadFailureCode, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class TransferSource:
    transport: Transport
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    staging_path: Path | None = None


@dataclass(frozen=True)
class PlannedFile:
    path: str
    size: int
    sha256: str | None = None
    blob_id: str | None = None


@dataclass(frozen=True)
class TransferPlan:
    repo_id: str
    commit_sha: str
    files: tuple[PlannedFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def wanted(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatch(path, pat) for pat in IGNORE_PATTERNS):
        return False
    return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat) for pat in ALLOW_PATTERNS)


def safe_relative(path: str) -> str:
    """A repo path that cannot escape the model folder."""
    parts = Path(path).parts
    if Path(path).is_absolute() or not parts or any(p in {"..", ""} for p in parts):
        raise TransferFailed(
            DownloadFailureCode.TRANSFER_FAILED,
            f"the source lists a file with an unsafe path {path!r}; refusing to write it",
            retryable=False,
        )
    return path


# --- planning -----------------------------------------------------------------------------


def plan_transfer(
    source: TransferSource, repo_id: str, revision: str | None, *, dir_name: str, gated: bool
) -> TransferPlan:
    """What to fetch and the checksums to verify it with; raises TransferFailed."""
    if source.transport is Transport.LOCAL:
        return _plan_local(source, repo_id, dir_name)
    if gated and not source.token:
        raise TransferFailed(
            DownloadFailureCode.GATED_NO_TOKEN,
            f"{repo_id} is a gated model: accept its license on the hub with your account, then "
            "set STUDIO_HF_TOKEN (or HF_TOKEN) on the downloader to a token of that account",
            retryable=False,
        )
    return _plan_hub(source, repo_id, revision)


def _plan_hub(source: TransferSource, repo_id: str, revision: str | None) -> TransferPlan:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=source.endpoint, token=source.token or False)
    try:
        info = api.model_info(repo_id, revision=revision)
        commit = info.sha
        if info.gated and not source.token:
            raise TransferFailed(
                DownloadFailureCode.GATED_NO_TOKEN,
                f"{repo_id} is a gated model: accept its license on the hub with your account, "
                "then set STUDIO_HF_TOKEN (or HF_TOKEN) on the downloader to a token of that "
                "account",
                retryable=False,
            )
        if not commit:
            raise TransferFailed(
                DownloadFailureCode.REVISION_NOT_FOUND,
                f"{source.endpoint} did not say which commit {repo_id}@{revision or 'main'} is",
                retryable=False,
            )
        files: list[PlannedFile] = []
        for item in api.list_repo_tree(repo_id, revision=commit, recursive=True):
            if not isinstance(item, RepoFile) or not wanted(item.path):
                continue
            files.append(
                PlannedFile(
                    path=safe_relative(item.path),
                    size=item.size,
                    sha256=item.lfs.sha256 if item.lfs else None,
                    blob_id=item.blob_id,
                )
            )
    except TransferFailed:
        raise
    except Exception as exc:
        raise hub_failure(exc, source, repo_id, revision) from exc
    if not files:
        raise TransferFailed(
            DownloadFailureCode.NO_FILES,
            f"{repo_id}@{commit} has no weights, config or tokenizer files to install",
            retryable=False,
        )
    return TransferPlan(repo_id=repo_id, commit_sha=commit, files=tuple(files))


def _plan_local(source: TransferSource, repo_id: str, dir_name: str) -> TransferPlan:
    if source.staging_path is None:
        raise TransferFailed(
            DownloadFailureCode.SOURCE_NOT_CONFIGURED,
            "the local transport needs STUDIO_STAGING_DIR, a folder holding pre-staged models",
            retryable=False,
        )
    root = source.staging_path / dir_name
    if not root.is_dir():
        raise TransferFailed(
            DownloadFailureCode.REPO_NOT_FOUND,
            f"no pre-staged copy of {repo_id} at {root}; stage it there first, e.g. "
            f"`hf download {repo_id} --local-dir {root}`",
            retryable=False,
        )
    files: list[PlannedFile] = []
    commits: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if not wanted(rel):
            continue
        commit, etag = _read_hub_metadata(root, rel)
        if commit:
            commits.add(commit)
        sha256 = etag if etag and len(etag) == 64 else None
        files.append(PlannedFile(path=rel, size=path.stat().st_size, sha256=sha256))
    if not files:
        raise TransferFailed(
            DownloadFailureCode.NO_FILES,
            f"{root} holds no weights, config or tokenizer files",
            retryable=False,
        )
    # A folder staged by `hf download --local-dir` records the commit of every file.
    commit_sha = commits.pop() if len(commits) == 1 else "unknown"
    return TransferPlan(repo_id=repo_id, commit_sha=commit_sha, files=tuple(files))


def _read_hub_metadata(root: Path, rel: str) -> tuple[str | None, str | None]:
    meta = root / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
    try:
        lines = meta.read_text().splitlines()
    except OSError:
        return None, None
    if len(lines) < 2:
        return None, None
    return lines[0].strip() or None, lines[1].strip().strip('"') or None


def hub_failure(
    exc: BaseException, source: TransferSource, repo_id: str, revision: str | None
) -> TransferFailed:
    """A hub client error as a reason a person understands."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = source.endpoint or "the hub"
    if isinstance(exc, GatedRepoError):
        if source.token:
            reason = (
                f"{repo_id} is gated and the configured token has no access: accept the license "
                f"at {where}/{repo_id} with the token's account"
            )
        else:
            reason = (
                f"{repo_id} is a gated model: accept its license on the hub, then set "
                "STUDIO_HF_TOKEN (or HF_TOKEN) on the downloader"
            )
        return TransferFailed(DownloadFailureCode.GATED_NO_TOKEN, reason, retryable=False)
    if isinstance(exc, RepositoryNotFoundError):
        return TransferFailed(
            DownloadFailureCode.REPO_NOT_FOUND,
            f"repository {repo_id} was not found on {where}; check the catalog's hub_repo_id",
            retryable=False,
        )
    if isinstance(exc, RevisionNotFoundError):
        return TransferFailed(
            DownloadFailureCode.REVISION_NOT_FOUND,
            f"revision {revision!r} of {repo_id} was not found on {where}",
            retryable=False,
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return disk_full(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if (
        isinstance(exc, HfHubHTTPError)
        and status is not None
        and 400 <= status < 500
        and status != 429
    ):
        return TransferFailed(
            DownloadFailureCode.TRANSFER_FAILED,
            f"{where} refused the request for {repo_id} (HTTP {status}): {exc}",
            retryable=False,
        )
    return TransferFailed(
        DownloadFailureCode.SOURCE_UNREACHABLE,
        f"{where} is unreachable or failing ({type(exc).__name__}: {_first_line(exc)}); "
        "check the endpoint and the network, then ask again",
        retryable=True,
    )


def disk_full(exc: BaseException) -> TransferFailed:
    return TransferFailed(
        DownloadFailureCode.DISK_FULL,
        f"the disk holding the models directory is full ({exc}); free space or point "
        "STUDIO_MODELS_DIR at a larger volume, then ask again",
        retryable=True,
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


# --- transfer (runs in a child process) ------------------------------------------------------


@dataclass(frozen=True)
class TransferJob:
    """Everything the child process needs; the token travels in the environment, not here."""

    transport: Transport
    repo_id: str
    commit_sha: str
    files: list[str]
    local_dir: str
    endpoint: str | None = None
    staging_root: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TransferJob:
        data: dict[str, Any] = json.loads(text)
        data["transport"] = Transport(data["transport"])
        return cls(**data)


def transfer_argv(job: TransferJob) -> list[str]:
    """The command line of the child process that performs `job`."""
    if job.transport is Transport.HF_CLI:
        hf = shutil.which("hf") or str(Path(sys.executable).with_name("hf"))
        return [
            hf,
            "download",
            job.repo_id,
            *job.files,
            "--revision",
            job.commit_sha,
            "--local-dir",
            job.local_dir,
        ]
    return [sys.executable, "-m", "studio_ai.adapters.model_transfer", job.to_json()]


def transfer_env(job: TransferJob, token: str | None) -> dict[str, str]:
    # The child needs no secrets of ours: only the hub token, and only for the hub it talks to.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k != "HF_TOKEN"}
    if token:
        env["HF_TOKEN"] = token
    if job.endpoint:
        env["HF_ENDPOINT"] = job.endpoint
    # Keep the hub client's own cache (refs, locks) beside the models, not in $HOME.
    env["HF_HUB_CACHE"] = str(Path(job.local_dir).parent / ".hub-cache")
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    return env


def run_transfer(job: TransferJob) -> None:
    """Fetch `job.files` into `job.local_dir` (in the child process)."""
    Path(job.local_dir).mkdir(parents=True, exist_ok=True)
    if job.transport is Transport.LOCAL:
        assert job.staging_root is not None
        _copy_staged(Path(job.staging_root), Path(job.local_dir), job.files)
        return
    from huggingface_hub import snapshot_download

    snapshot_download(
        job.repo_id,
        revision=job.commit_sha,
        endpoint=job.endpoint,
        local_dir=job.local_dir,
        allow_patterns=job.files,
        token=os.environ.get("HF_TOKEN") or False,
        max_workers=4,
    )


def _copy_staged(root: Path, target: Path, files: Iterable[str]) -> None:
    for rel in files:
        src, dst = root / safe_relative(rel), target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() and dst.stat().st_size == src.stat().st_size:
            continue
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
        partial = dst.with_name(dst.name + PARTIAL_SUFFIX)
        shutil.copyfile(src, partial)  # copy_file_range/sendfile where the kernel has them
        partial.replace(dst)


def remove_abandoned_partials(local_dir: Path) -> int:
    """Delete partial files a killed transfer left behind; returns how many.

    huggingface_hub 2.x writes each download to a process-unique `.incomplete` file and does
    not resume another process's, so after a crash they are only dead weight (and would be
    counted as progress). Files that finished are kept: the next transfer skips them. Only
    one transfer writes into a model folder at a time (requests are keyed by model id).
    """
    removed = 0
    for base, pattern in (
        (local_dir / ".cache" / "huggingface" / "download", "*.incomplete"),
        (local_dir, f"*{PARTIAL_SUFFIX}"),
    ):
        if base.is_dir():
            for partial in base.rglob(pattern):
                partial.unlink(missing_ok=True)
                removed += 1
    return removed


# --- progress and verification ---------------------------------------------------------------


def bytes_on_disk(local_dir: Path, plan: TransferPlan) -> tuple[int, int]:
    """(bytes, files) finished or in flight in `local_dir` for the planned files."""
    done_bytes = done_files = 0
    for f in plan.files:
        path = local_dir / f.path
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size == f.size:
            done_files += 1
            done_bytes += size
    in_flight = local_dir / ".cache" / "huggingface" / "download"
    for pattern, base in (("*.incomplete", in_flight), (f"*{PARTIAL_SUFFIX}", local_dir)):
        if base.is_dir():
            for partial in base.rglob(pattern):
                try:
                    done_bytes += partial.stat().st_size
                except OSError:
                    continue
    return min(done_bytes, plan.total_bytes), done_files


def git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(local_dir: Path, plan: TransferPlan) -> dict[str, str | None]:
    """sha256 of each planned file; a mismatching or missing file raises TransferFailed.

    A file that fails its check is deleted, so that the next attempt fetches it again.
    """
    verified: dict[str, str | None] = {}
    for f in plan.files:
        path = local_dir / f.path
        if not path.is_file() or path.stat().st_size != f.size:
            raise TransferFailed(
                DownloadFailureCode.TRANSFER_FAILED,
                f"{f.path} is missing or incomplete after the transfer ({path})",
                retryable=True,
            )
        if f.sha256:
            actual = sha256_of(path)
            if actual != f.sha256:
                path.unlink(missing_ok=True)
                raise TransferFailed(
                    DownloadFailureCode.CHECKSUM_MISMATCH,
                    f"checksum mismatch for {f.path}: the source says sha256 {f.sha256}, the "
                    f"downloaded file has {actual}; the file was removed, ask again (if it "
                    "repeats, the source is serving corrupt data)",
                    retryable=True,
                )
            verified[f.path] = actual
        elif f.blob_id and len(f.blob_id) == 40:
            if git_blob_sha1(path) != f.blob_id:
                path.unlink(missing_ok=True)
                raise TransferFailed(
                    DownloadFailureCode.CHECKSUM_MISMATCH,
                    f"checksum mismatch for {f.path}: its git blob id differs from the source's "
                    f"{f.blob_id}; the file was removed, ask again",
                    retryable=True,
                )
            verified[f.path] = None
        else:
            verified[f.path] = None
    return verified


def main(argv: list[str]) -> int:
    job = TransferJob.from_json(argv[1])
    try:
        run_transfer(job)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(json.dumps({"code": "disk_full", "error": str(exc)}), file=sys.stderr)
            return 28
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
