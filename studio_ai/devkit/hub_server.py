"""A Hugging Face Hub stand-in that serves model repos from a local folder.

`REPOS_DIR/<org>/<name>/...` is served as the model repo `<org>/<name>`, files as they are on
disk, so that huggingface_hub 2.x's real `snapshot_download`, `HfApi.model_info`,
`HfApi.list_repo_tree` and the `hf download` CLI work against it (endpoint=URL or HF_ENDPOINT).

Protocol, as huggingface_hub 2.4 speaks it (checked in its source):

- `GET /api/models/{repo}[/revision/{rev}]`: `sha` and `siblings` (`rfilename`; with
  `?blobs=true`, which `files_metadata=True` sends, also `size`, `blobId` and
  `lfs {sha256, size, pointerSize}`). `snapshot_download` calls it only to resolve a branch.
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true`: entries `{type, oid, size, path}`
  plus `lfs {oid (sha256), size, pointerSize}` for LFS files. `snapshot_download` lists the tree
  at the resolved sha and downloads exactly those files.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit` (required, or the client refuses
  the server), `ETag` (quoted; git blob sha1, or the sha256 for LFS files) and, for LFS files,
  `X-Linked-Etag` / `X-Linked-Size`, which the client prefers. The real hub redirects LFS files
  to a CDN; the client accepts a direct 200 with the same headers, which is what this serves.
  GET honours `Range` (206) — the client resumes with it when a stream breaks mid-file.
- Errors: 404 with `X-Error-Code` `RepoNotFound`, `RevisionNotFound` or `EntryNotFound`;
  gated repos answer file requests with 401 (no token) or 403 (token not allowed) and
  `X-Error-Code: GatedRepo`, while their metadata stays public (`gated: "manual"`), as on the hub.

Each repo's commit sha is derived from its file paths and contents, so it is stable across
restarts and changes whenever a file does; `main` resolves to it.

Test knobs (`create_hub_app` arguments, changeable at runtime with `POST /_control` or
`HubServer.configure`): `gated`, `valid_tokens`, `corrupt` (serve flipped bytes for some
files while advertising the true sha256), `bytes_per_second` (throttle file bodies),
`fail_first` (answer 503 to the next N requests) and `drop_after_bytes` (cut the connection
after N bytes of any file body not requested with `Range`). `GET /_control` shows the knobs and
the request log; `POST /_control/reset` restores the factory settings and clears the log.

    python -m studio_ai.devkit.hub_server --repos DIR --port 8900 [--tiny-models]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import mimetypes
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypedDict

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import Unpack

LFS_SIZE_THRESHOLD = 1024 * 1024
LFS_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack"}
)
DEFAULT_BRANCH = "main"
_HASH_CHUNK = 1024 * 1024
_STREAM_CHUNK = 64 * 1024
_THROTTLE_TICK_S = 0.05
_REQUEST_LOG_SIZE = 10_000


# ---------------------------------------------------------------------------------------------
# Repo index: files, hashes and the derived commit sha


@dataclass(frozen=True)
class RepoFileEntry:
    """One file of a served repo, with the hashes the hub protocol advertises."""

    path: str
    disk_path: Path
    size: int
    sha256: str
    blob_id: str
    """git blob sha1 of the content, or of the LFS pointer for LFS files (as on the hub)."""
    is_lfs: bool
    pointer_size: int | None

    @property
    def etag(self) -> str:
        return self.sha256 if self.is_lfs else self.blob_id


@dataclass(frozen=True)
class RepoSnapshot:
    """A repo at its (single) commit."""

    repo_id: str
    sha: str
    files: dict[str, RepoFileEntry]
    last_modified: datetime

    def resolve(self, revision: str) -> bool:
        return revision in (DEFAULT_BRANCH, self.sha)

    def directories(self) -> set[str]:
        dirs: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:depth]))
        return dirs


def _git_blob_sha1(size: int, chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    spec = "https://git-lfs.github.com/spec/v1"
    return f"version {spec}\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs_file(path: str, size: int) -> bool:
    """Whether the hub would store this file with Git LFS (weights, or anything over 1 MiB)."""
    return Path(path).suffix in LFS_SUFFIXES or size > LFS_SIZE_THRESHOLD


def _hash_file(rel_path: str, disk_path: Path, size: int) -> RepoFileEntry:
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with disk_path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            sha256.update(chunk)
            git_sha1.update(chunk)
    sha256_hex = sha256.hexdigest()
    if is_lfs_file(rel_path, size):
        pointer = _lfs_pointer(sha256_hex, size)
        return RepoFileEntry(
            path=rel_path,
            disk_path=disk_path,
            size=size,
            sha256=sha256_hex,
            blob_id=_git_blob_sha1(len(pointer), [pointer]),
            is_lfs=True,
            pointer_size=len(pointer),
        )
    return RepoFileEntry(
        path=rel_path,
        disk_path=disk_path,
        size=size,
        sha256=sha256_hex,
        blob_id=git_sha1.hexdigest(),
        is_lfs=False,
        pointer_size=None,
    )


def _is_served(rel_parts: tuple[str, ...]) -> bool:
    # Dot-folders (.git, a local_dir's .cache) are not repo content; .gitattributes is.
    return all(not part.startswith(".") or part == ".gitattributes" for part in rel_parts)


class RepoIndex:
    """Maps repo ids to snapshots of `repos_dir/<org>/<name>`, rehashing only changed files."""

    def __init__(self, repos_dir: Path) -> None:
        self.repos_dir = Path(repos_dir)
        self._lock = threading.Lock()
        self._snapshots: dict[str, tuple[tuple[tuple[str, int, int], ...], RepoSnapshot]] = {}
        self._entries: dict[tuple[Path, int, int], RepoFileEntry] = {}

    def repo_dir(self, repo_id: str) -> Path | None:
        parts = repo_id.split("/")
        if len(parts) != 2 or any(not p or p.startswith(".") for p in parts):
            return None
        folder = self.repos_dir / parts[0] / parts[1]
        return folder if folder.is_dir() else None

    def repo_ids(self) -> list[str]:
        if not self.repos_dir.is_dir():
            return []
        return sorted(
            f"{org.name}/{repo.name}"
            for org in self.repos_dir.iterdir()
            if org.is_dir() and not org.name.startswith(".")
            for repo in org.iterdir()
            if repo.is_dir() and not repo.name.startswith(".")
        )

    def get(self, repo_id: str) -> RepoSnapshot | None:
        """The repo's current snapshot, or None if there is no such repo. Blocking (hashes)."""
        folder = self.repo_dir(repo_id)
        if folder is None:
            return None
        stats: list[tuple[str, Path, int, int]] = []
        for disk_path in sorted(folder.rglob("*")):
            rel_parts = disk_path.relative_to(folder).parts
            if not _is_served(rel_parts) or not disk_path.is_file():
                continue
            st = disk_path.stat()
            stats.append(("/".join(rel_parts), disk_path, st.st_size, st.st_mtime_ns))
        signature = tuple((rel, size, mtime) for rel, _, size, mtime in stats)
        with self._lock:
            cached = self._snapshots.get(repo_id)
            if cached is not None and cached[0] == signature:
                return cached[1]
            files: dict[str, RepoFileEntry] = {}
            for rel, disk_path, size, mtime in stats:
                key = (disk_path, size, mtime)
                entry = self._entries.get(key)
                if entry is None or entry.path != rel:
                    entry = _hash_file(rel, disk_path, size)
                    self._entries[key] = entry
                files[rel] = entry
            commit = hashlib.sha1(usedforsecurity=False)
            for rel, entry in files.items():
                commit.update(f"{rel}\0{entry.blob_id}\n".encode())
            newest = max((mtime for *_, mtime in stats), default=0)
            snapshot = RepoSnapshot(
                repo_id=repo_id,
                sha=commit.hexdigest(),
                files=files,
                last_modified=datetime.fromtimestamp(newest / 1e9, tz=UTC),
            )
            self._snapshots[repo_id] = (signature, snapshot)
            return snapshot


# ---------------------------------------------------------------------------------------------
# Knobs, request log and shared state


@dataclass(frozen=True)
class HubKnobs:
    """Fault-injection and access settings of a running hub server."""

    gated: frozenset[str] = frozenset()
    valid_tokens: frozenset[str] = frozenset()
    corrupt: frozenset[tuple[str, str]] = frozenset()
    bytes_per_second: int | None = None
    fail_first: int = 0
    drop_after_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "gated": sorted(self.gated),
            "valid_tokens": sorted(self.valid_tokens),
            "corrupt": sorted([repo, path] for repo, path in self.corrupt),
            "bytes_per_second": self.bytes_per_second,
            "fail_first": self.fail_first,
            "drop_after_bytes": self.drop_after_bytes,
        }


class KnobChanges(TypedDict, total=False):
    """Keyword arguments accepted by `HubState.configure` / `HubServer.configure`."""

    gated: Iterable[str]
    valid_tokens: Iterable[str]
    corrupt: Iterable[tuple[str, str]]
    bytes_per_second: int | None
    fail_first: int
    drop_after_bytes: int | None


class _ControlBody(BaseModel):
    gated: list[str] | None = None
    valid_tokens: list[str] | None = None
    corrupt: list[tuple[str, str]] | None = None
    bytes_per_second: int | None = None
    fail_first: int | None = None
    drop_after_bytes: int | None = None
    clear_requests: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered (control requests excluded)."""

    method: str
    path: str
    query: str
    range: str | None
    authorization: bool
    status: int
    at: float = field(default_factory=time.time)


@dataclass
class HubState:
    """Everything a hub app instance shares between requests."""

    index: RepoIndex
    defaults: HubKnobs
    knobs: HubKnobs
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=_REQUEST_LOG_SIZE))
    bytes_served: int = 0
    """File body bytes sent so far, counted as they go out (a test can wait on it)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, **changes: Unpack[KnobChanges]) -> HubKnobs:
        normalized: dict[str, Any] = dict(changes)
        for name in ("gated", "valid_tokens"):
            if name in changes:
                normalized[name] = frozenset(normalized[name])
        if "corrupt" in changes:
            normalized["corrupt"] = frozenset((repo, path) for repo, path in changes["corrupt"])
        with self.lock:
            self.knobs = replace(self.knobs, **normalized)
            return self.knobs

    def reset(self) -> None:
        with self.lock:
            self.knobs = self.defaults
            self.requests.clear()
            self.bytes_served = 0

    def take_failure(self) -> bool:
        with self.lock:
            if self.knobs.fail_first <= 0:
                return False
            self.knobs = replace(self.knobs, fail_first=self.knobs.fail_first - 1)
            return True

    def count_bytes(self, n: int) -> None:
        with self.lock:
            self.bytes_served += n

    def record(self, entry: RequestRecord) -> None:
        with self.lock:
            self.requests.append(entry)

    def request_log(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.requests)


def hub_state(app: FastAPI) -> HubState:
    """The state of an app made by `create_hub_app`."""
    state: HubState = app.state.hub
    return state


class _DropConnection(Exception):
    """Raised inside a body stream to cut the connection mid-file."""


class _HubMiddleware:
    """Answers 503 while `fail_first` lasts, logs requests, and turns drops into cut connections."""

    def __init__(self, app: ASGIApp, state: HubState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_control"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            self.state.record(
                RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope.get("query_string", b"").decode("latin-1"),
                    range=headers.get("range"),
                    authorization="authorization" in headers,
                    status=status,
                )
            )

        async def send_and_record(message: Message) -> None:
            # Logged before the client can see the response, so a test that has its answer
            # always finds the request in the log (and a reset never races a late entry).
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            if self.state.take_failure():
                response = _error(503, None, "Service temporarily unavailable (fail_first).")
                await response(scope, receive, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        except _DropConnection:
            # Returning with the body unfinished makes uvicorn close the connection.
            pass
        finally:
            if not recorded:
                record(0)


# ---------------------------------------------------------------------------------------------
# Responses


def _error(status: int, code: str | None, message: str, commit: str | None = None) -> Response:
    # Header values must be latin-1; a repo id taken from the URL may not be.
    headers = {"X-Error-Message": message.encode("latin-1", "replace").decode("latin-1")}
    if code is not None:
        headers["X-Error-Code"] = code
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _repo_not_found(repo_id: str) -> Response:
    return _error(404, "RepoNotFound", f"Repository {repo_id} not found.")


def _revision_not_found(repo_id: str, revision: str) -> Response:
    return _error(404, "RevisionNotFound", f"Invalid rev id: {revision} for {repo_id}.")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _safetensors_parameters(entry: RepoFileEntry) -> dict[str, int]:
    """Parameter counts per dtype, read from a safetensors header (as the hub reports them)."""
    counts: dict[str, int] = {}
    try:
        with entry.disk_path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            # A file that is not really safetensors can claim any header length.
            if header_len > min(entry.size, 100 * 1024 * 1024):
                return counts
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, OverflowError, struct.error):
        return counts
    if not isinstance(header, dict):
        return counts
    try:
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for dim in tensor["shape"]:
                numel *= int(dim)
            counts[str(tensor["dtype"])] = counts.get(str(tensor["dtype"]), 0) + numel
    except (KeyError, TypeError, ValueError):
        return {}
    return counts


def _front_matter(entry: RepoFileEntry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    import yaml

    text = entry.disk_path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    block = text[3:].split("\n---", 1)[0]
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _model_info(snapshot: RepoSnapshot, *, gated: bool, blobs: bool) -> dict[str, Any]:
    siblings: list[dict[str, Any]] = []
    for entry in snapshot.files.values():
        sibling: dict[str, Any] = {"rfilename": entry.path}
        if blobs:
            sibling["size"] = entry.size
            sibling["blobId"] = entry.blob_id
            if entry.is_lfs:
                sibling["lfs"] = {
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "pointerSize": entry.pointer_size,
                }
        siblings.append(sibling)
    card = _front_matter(snapshot.files.get("README.md"))
    config: dict[str, Any] = {}
    if (config_entry := snapshot.files.get("config.json")) is not None:
        with contextlib.suppress(OSError, ValueError):
            full = json.loads(config_entry.disk_path.read_text(encoding="utf-8"))
            config = {k: full[k] for k in ("architectures", "model_type") if k in full}
    parameters: dict[str, int] = {}
    for entry in snapshot.files.values():
        if entry.path.endswith(".safetensors"):
            for dtype, count in _safetensors_parameters(entry).items():
                parameters[dtype] = parameters.get(dtype, 0) + count
    org, _ = snapshot.repo_id.split("/")
    info: dict[str, Any] = {
        "_id": snapshot.sha[:24],
        "id": snapshot.repo_id,
        "modelId": snapshot.repo_id,
        "author": org,
        "sha": snapshot.sha,
        "lastModified": _iso(snapshot.last_modified),
        "createdAt": _iso(snapshot.last_modified),
        "private": False,
        "gated": "manual" if gated else False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [t for t in (card.get("library_name"), card.get("pipeline_tag")) if t],
        "siblings": siblings,
        "usedStorage": sum(e.size for e in snapshot.files.values()),
    }
    for key in ("library_name", "pipeline_tag"):
        if key in card:
            info[key] = card[key]
    if card:
        info["cardData"] = card
    if config:
        info["config"] = config
    if parameters:
        info["safetensors"] = {"parameters": parameters, "total": sum(parameters.values())}
    return info


def _tree_entries(snapshot: RepoSnapshot, folder: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{folder}/" if folder else ""
    dirs = snapshot.directories()

    def wanted(path: str) -> bool:
        if not path.startswith(prefix) or path == folder:
            return False
        return recursive or "/" not in path[len(prefix) :]

    def tree_oid(directory: str) -> str:
        inner = f"{directory}/"
        digest = hashlib.sha1(usedforsecurity=False)
        for path, entry in snapshot.files.items():
            if path.startswith(inner):
                digest.update(f"{path}\0{entry.blob_id}\n".encode())
        return digest.hexdigest()

    entries: list[dict[str, Any]] = []
    for directory in sorted(d for d in dirs if wanted(d)):
        entries.append(
            {"type": "directory", "oid": tree_oid(directory), "size": 0, "path": directory}
        )
    for entry in snapshot.files.values():
        if not wanted(entry.path):
            continue
        item: dict[str, Any] = {
            "type": "file",
            "oid": entry.blob_id,
            "size": entry.size,
            "path": entry.path,
        }
        if entry.is_lfs:
            item["lfs"] = {
                "oid": entry.sha256,
                "size": entry.size,
                "pointerSize": entry.pointer_size,
            }
        entries.append(item)
    return entries


def _parse_range(header: str | None, size: int) -> tuple[int, int] | Literal["invalid"] | None:
    """(start, end inclusive) for a single `bytes=` range; None means serve the whole file."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # multi-range or other units: ignoring Range is allowed
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "invalid"
            return (max(size - suffix, 0), size - 1) if size else "invalid"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)


async def _file_body(
    entry: RepoFileEntry,
    start: int,
    end: int,
    *,
    corrupt: bool,
    bytes_per_second: int | None,
    drop_after: int | None,
    on_sent: Callable[[int], None],
) -> AsyncIterator[bytes]:
    """Stream bytes [start, end] of a file, throttled, corrupted or cut off as the knobs say."""
    chunk_size = _STREAM_CHUNK
    if bytes_per_second is not None and bytes_per_second > 0:
        chunk_size = max(1, int(bytes_per_second * _THROTTLE_TICK_S))
    flip_at = entry.size // 2  # one flipped byte: same length, different sha256
    position = start
    sent = 0
    async with await anyio.open_file(entry.disk_path, "rb") as fh:
        await fh.seek(start)
        while position <= end:
            want = min(chunk_size, end - position + 1)
            if drop_after is not None:
                want = min(want, drop_after - sent) if drop_after > sent else 0
                if want == 0:
                    raise _DropConnection
            chunk = await fh.read(want)
            if not chunk:
                break
            if corrupt and position <= flip_at < position + len(chunk):
                mutable = bytearray(chunk)
                mutable[flip_at - position] ^= 0xFF
                chunk = bytes(mutable)
            yield chunk
            on_sent(len(chunk))
            position += len(chunk)
            sent += len(chunk)
            if bytes_per_second is not None and bytes_per_second > 0:
                await asyncio.sleep(len(chunk) / bytes_per_second)


def _bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# ---------------------------------------------------------------------------------------------
# App factory


def create_hub_app(
    repos_dir: Path,
    *,
    gated: set[str] | frozenset[str] = frozenset(),
    valid_tokens: set[str] | frozenset[str] = frozenset(),
    corrupt: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    bytes_per_second: int | None = None,
    fail_first: int = 0,
    drop_after_bytes: int | None = None,
) -> FastAPI:
    """A hub-compatible ASGI app serving `repos_dir/<org>/<name>`; knobs as in the module doc."""
    defaults = HubKnobs(
        gated=frozenset(gated),
        valid_tokens=frozenset(valid_tokens),
        corrupt=frozenset(corrupt),
        bytes_per_second=bytes_per_second,
        fail_first=fail_first,
        drop_after_bytes=drop_after_bytes,
    )
    state = HubState(index=RepoIndex(Path(repos_dir)), defaults=defaults, knobs=defaults)
    app = FastAPI(title="studio-ai devkit hub", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.hub = state
    app.add_middleware(_HubMiddleware, state=state)

    async def snapshot_of(repo_id: str) -> RepoSnapshot | None:
        return await anyio.to_thread.run_sync(state.index.get, repo_id)

    @app.get("/_control")
    async def control_get() -> dict[str, Any]:
        return {
            "knobs": state.knobs.to_json(),
            "bytes_served": state.bytes_served,
            "requests": [asdict(r) for r in state.request_log()],
        }

    @app.post("/_control")
    async def control_set(body: _ControlBody) -> dict[str, Any]:
        changes = body.model_dump(include=body.model_fields_set - {"clear_requests"})
        if "fail_first" in changes and changes["fail_first"] is None:
            changes["fail_first"] = 0
        for name in ("gated", "valid_tokens", "corrupt"):
            if name in changes and changes[name] is None:
                changes[name] = ()
        knobs = state.configure(**changes)
        if body.clear_requests:
            with state.lock:
                state.requests.clear()
        return {"knobs": knobs.to_json()}

    @app.post("/_control/reset")
    async def control_reset() -> dict[str, Any]:
        state.reset()
        return {"knobs": state.knobs.to_json()}

    @app.get("/api/models")
    async def list_models() -> list[dict[str, Any]]:
        result = []
        for repo_id in await anyio.to_thread.run_sync(state.index.repo_ids):
            snapshot = await snapshot_of(repo_id)
            if snapshot is not None:
                result.append({"id": repo_id, "modelId": repo_id, "sha": snapshot.sha})
        return result

    async def model_info(org: str, name: str, revision: str, request: Request) -> Response:
        repo_id = f"{org}/{name}"
        snapshot = await snapshot_of(repo_id)
        if snapshot is None:
            return _repo_not_found(repo_id)
        if not snapshot.resolve(revision):
            return _revision_not_found(repo_id, revision)
        blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
        info = _model_info(snapshot, gated=repo_id in state.knobs.gated, blobs=blobs)
        return JSONResponse(info)

    @app.get("/api/models/{org}/{name}")
    async def model_info_main(org: str, name: str, request: Request) -> Response:
        return await model_info(org, name, DEFAULT_BRANCH, request)

    @app.get("/api/models/{org}/{name}/revision/{revision}")
    async def model_info_at(org: str, name: str, revision: str, request: Request) -> Response:
        return await model_info(org, name, revision, request)

    async def tree(org: str, name: str, revision: str, folder: str, request: Request) -> Response:
        repo_id = f"{org}/{name}"
        snapshot = await snapshot_of(repo_id)
        if snapshot is None:
            return _repo_not_found(repo_id)
        if not snapshot.resolve(revision):
            return _revision_not_found(repo_id, revision)
        folder = folder.strip("/")
        if folder and folder not in snapshot.directories():
            message = f"{folder} does not exist on {revision}"
            return _error(404, "EntryNotFound", message, snapshot.sha)
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        return JSONResponse(_tree_entries(snapshot, folder, recursive))

    @app.get("/api/models/{org}/{name}/tree/{revision}")
    async def tree_root(org: str, name: str, revision: str, request: Request) -> Response:
        return await tree(org, name, revision, "", request)

    @app.get("/api/models/{org}/{name}/tree/{revision}/{folder:path}")
    async def tree_folder(
        org: str, name: str, revision: str, folder: str, request: Request
    ) -> Response:
        return await tree(org, name, revision, folder, request)

    @app.api_route("/{org}/{name}/resolve/{revision}/{file_path:path}", methods=["GET", "HEAD"])
    async def resolve(
        org: str, name: str, revision: str, file_path: str, request: Request
    ) -> Response:
        repo_id = f"{org}/{name}"
        snapshot = await snapshot_of(repo_id)
        if snapshot is None:
            return _repo_not_found(repo_id)
        if not snapshot.resolve(revision):
            return _revision_not_found(repo_id, revision)
        knobs = state.knobs
        if repo_id in knobs.gated:
            token = _bearer_token(request)
            if token is None:
                return _error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                )
            if token not in knobs.valid_tokens:
                return _error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the authorized "
                    "list.",
                )
        entry = snapshot.files.get(file_path)
        if entry is None:
            message = f"{file_path} does not exist on {revision}"
            return _error(404, "EntryNotFound", message, snapshot.sha)

        headers = {
            "X-Repo-Commit": snapshot.sha,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(entry.path)[0] or "application/octet-stream",
        }
        if entry.is_lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)

        wanted = _parse_range(request.headers.get("range"), entry.size)
        if wanted == "invalid":
            headers["Content-Range"] = f"bytes */{entry.size}"
            headers["Content-Length"] = "0"
            return Response(status_code=416, headers=headers)
        start, end = wanted if wanted is not None else (0, entry.size - 1)
        status = 200
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        headers["Content-Length"] = str(max(end - start + 1, 0))
        if request.method == "HEAD" or entry.size == 0:
            return Response(status_code=status, headers=headers)
        body = _file_body(
            entry,
            start,
            end,
            corrupt=(repo_id, entry.path) in knobs.corrupt,
            bytes_per_second=knobs.bytes_per_second,
            drop_after=knobs.drop_after_bytes if wanted is None else None,
            on_sent=state.count_bytes,
        )
        return StreamingResponse(body, status_code=status, headers=headers)

    return app


# ---------------------------------------------------------------------------------------------
# Background server


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class HubServer:
    """Runs a hub app with uvicorn in a background thread: `with HubServer(dir) as hub: hub.url`."""

    def __init__(
        self,
        repos_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        gated: set[str] | frozenset[str] = frozenset(),
        valid_tokens: set[str] | frozenset[str] = frozenset(),
        corrupt: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
        bytes_per_second: int | None = None,
        fail_first: int = 0,
        drop_after_bytes: int | None = None,
    ) -> None:
        self.repos_dir = Path(repos_dir)
        self.host = host
        self.app = create_hub_app(
            self.repos_dir,
            gated=gated,
            valid_tokens=valid_tokens,
            corrupt=corrupt,
            bytes_per_second=bytes_per_second,
            fail_first=fail_first,
            drop_after_bytes=drop_after_bytes,
        )
        self.state = hub_state(self.app)
        self._requested_port = port or 0
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("HubServer is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> HubServer:
        if self._thread is not None:
            return self
        sock = _free_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="hub-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"hub server did not start on {self.host}:{self._port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def configure(self, **changes: Unpack[KnobChanges]) -> HubKnobs:
        """Change knobs on the running server (only the ones given)."""
        return self.state.configure(**changes)

    def reset(self) -> None:
        """Restore the knobs given at construction and clear the request log."""
        self.state.reset()

    @property
    def knobs(self) -> HubKnobs:
        return self.state.knobs

    @property
    def bytes_served(self) -> int:
        """File body bytes sent since start (or the last reset)."""
        return self.state.bytes_served

    @property
    def requests(self) -> list[RequestRecord]:
        """Requests answered so far (control requests excluded), oldest first."""
        return self.state.request_log()

    def iter_requests(
        self, method: str | None = None, path_contains: str = ""
    ) -> Iterator[RequestRecord]:
        """Logged requests filtered by method and a substring of the path."""
        for record in self.requests:
            if (method is None or record.method == method) and path_contains in record.path:
                yield record


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m studio_ai.devkit.hub_server --repos DIR --port 8900`."""
    parser = argparse.ArgumentParser(description="Serve REPOS/<org>/<name> as a Hugging Face hub.")
    parser.add_argument("--repos", type=Path, required=True, help="folder of <org>/<name> repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--tiny-models", action="store_true", help="first create the tiny test models in --repos"
    )
    parser.add_argument("--gated", action="append", default=[], metavar="REPO")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN", help="valid token")
    parser.add_argument("--bytes-per-second", type=int, default=None)
    args = parser.parse_args(argv)

    if args.tiny_models:
        from studio_ai.devkit.tiny_models import TINY_GEMMA3, TINY_LLAMA, create_all

        if any(not (args.repos / repo).is_dir() for repo in (TINY_LLAMA, TINY_GEMMA3)):
            create_all(args.repos)
    app = create_hub_app(
        args.repos,
        gated=set(args.gated),
        valid_tokens=set(args.token),
        bytes_per_second=args.bytes_per_second,
    )
    print(f"hub serving {args.repos} at http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
