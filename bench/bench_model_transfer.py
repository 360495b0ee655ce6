"""Throughput of the `local` and `mirror` model transports against plain copies of the same bytes.

Builds a fake model of a few hundred MB (config/tokenizer JSON plus large random files named
`*.safetensors`; only bytes move, so they need not be valid safetensors), then, for each
repeat, times in one run:

- plain copy, same filesystem (baseline A): `shutil.copyfile` of every wanted file;
- `local` transport, hard-link: `ModelDownloader.download` with the staged folder on the same
  filesystem as the models directory (the default deployment);
- plain copy, across filesystems (baseline B) and the `local` transport with real copies,
  staging on another filesystem (`/dev/shm` by default) so that `os.link` fails with EXDEV;
- raw HTTP (baseline C): one httpx stream per file, one file after another, from the same hub
  server, in a separate process and timed inside it (so neither side's GIL slows the other);
- `mirror` transport: `ModelDownloader.download` against the devkit hub server.

The transports run the real code path: planning (hub API calls or a folder scan), a child
process that moves the bytes (snapshot_download with 4 workers for `mirror`), progress polling
and sha256 verification of every LFS file. Plan and verify are also timed alone.

Every output folder is removed after its measurement and the whole work area at the end.
Figures are with the source files in the page cache (they were just written) and without
fsync, for the transports and the baselines alike.

    .venv/bin/python bench/bench_model_transfer.py [--size-mb 300] [--files 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MB = 1_000_000
REPO_ID = "bench/big-model"
MODEL_ID = "bench/big-model"
_WRITE_CHUNK = 8 * 1024 * 1024


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-mb",
        type=int,
        default=_env_int("BENCH_TRANSFER_MB", 300),
        help="total size of the model files in MB (10^6 bytes); env BENCH_TRANSFER_MB",
    )
    parser.add_argument(
        "--files",
        type=int,
        default=_env_int("BENCH_TRANSFER_FILES", 3),
        help="number of large .safetensors files; env BENCH_TRANSFER_FILES",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=_env_int("BENCH_REPEAT", 5),
        help="measurements of each case (median reported); env BENCH_REPEAT",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=Path(os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()),
        help="work area (models dir, staging, hub repos); env BENCH_TMPDIR",
    )
    parser.add_argument(
        "--cross-fs-dir",
        default=os.environ.get("BENCH_CROSS_FS_DIR", "/dev/shm"),
        help="staging on another filesystem, to force real copies ('' to skip); "
        "env BENCH_CROSS_FS_DIR",
    )
    parser.add_argument("--raw-get", help=argparse.SUPPRESS)  # internal: the raw HTTP child
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.files < 1 or args.repeat < 1:
        parser.error("--size-mb, --files and --repeat must be at least 1")
    return args


# --- the raw HTTP baseline (runs in a child process) -------------------------------------------


def raw_get_child(spec_json: str) -> None:
    """GET each URL into its file over one connection, one after another; print the seconds."""
    import httpx

    spec: dict[str, list[list[str]]] = json.loads(spec_json)
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for url, dest in spec["files"]:
            with client.stream("GET", url) as response, open(dest, "wb") as out:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    out.write(chunk)
    print(json.dumps({"seconds": time.perf_counter() - started}))


# --- the fake model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeModel:
    repo_dir: Path
    wanted: list[str]
    wanted_bytes: int
    filtered_bytes: int


def write_random(path: Path, size: int, *, safetensors: bool = False) -> None:
    """`size` random bytes; with `safetensors`, behind a valid header (one U8 tensor).

    The hub server reads safetensors headers for its parameter counts, so the weights files
    get a real header; everything after it is random.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    left = size
    with path.open("wb") as out:
        if safetensors:
            header = b""
            for _ in range(3):  # the header's length depends on the number it contains
                n = size - 8 - len(header)
                body = {"weight": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}
                header = json.dumps(body).encode()
                header += b" " * (-len(header) % 8)
            out.write(struct.pack("<Q", len(header)) + header)
            left = size - 8 - len(header)
        while left > 0:
            n = min(_WRITE_CHUNK, left)
            out.write(os.urandom(n))
            left -= n


def create_fake_model(repo_dir: Path, total_bytes: int, n_large: int) -> FakeModel:
    """A model folder: small JSON files, `n_large` big random .safetensors files, one ignored."""
    from studio_ai.adapters.model_transfer import wanted

    repo_dir.mkdir(parents=True)
    small: dict[str, bytes] = {
        "config.json": json.dumps(
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "vocab_size": 128256}
        ).encode(),
        "generation_config.json": b'{"bos_token_id": 1, "eos_token_id": 2}',
        "tokenizer_config.json": b'{"model_max_length": 131072}',
        # About the size of a real tokenizer.json (LFS on the hub too: over 1 MiB).
        "tokenizer.json": json.dumps(
            {"model": {"vocab": {f"tok{i}": i for i in range(120_000)}}}
        ).encode(),
    }
    weights = [f"model-{i:05d}-of-{n_large:05d}.safetensors" for i in range(1, n_large + 1)]
    small["model.safetensors.index.json"] = json.dumps(
        {"weight_map": {f"layer.{i}": name for i, name in enumerate(weights)}}
    ).encode()
    for name, body in small.items():
        (repo_dir / name).write_bytes(body)
    large_total = max(total_bytes - sum(len(b) for b in small.values()), n_large)
    for i, name in enumerate(weights):
        share = large_total // n_large + (large_total % n_large if i == 0 else 0)
        write_random(repo_dir / name, share, safetensors=True)
    # Files the plan must leave out (README is not wanted; original/* is ignored).
    (repo_dir / "README.md").write_text("# bench model\n")
    write_random(repo_dir / "original" / "consolidated.00.pth", 4 * MB)

    names = sorted(p.relative_to(repo_dir).as_posix() for p in repo_dir.rglob("*") if p.is_file())
    keep = [n for n in names if wanted(n)]
    size_of: Callable[[str], int] = lambda n: (repo_dir / n).stat().st_size  # noqa: E731
    return FakeModel(
        repo_dir=repo_dir,
        wanted=keep,
        wanted_bytes=sum(size_of(n) for n in keep),
        filtered_bytes=sum(size_of(n) for n in names if n not in keep),
    )


def stage_for_local(
    model: FakeModel, staging_root: Path, *, link: bool, commit: str, etags: dict[str, str]
) -> Path:
    """A pre-staged folder as `hf download --local-dir` leaves it (files + .cache metadata)."""
    from studio_ai.domain.model_ids import model_dir_name

    folder = staging_root / model_dir_name(MODEL_ID)
    for rel in model.wanted:
        src, dst = model.repo_dir / rel, folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if link:
            os.link(src, dst)
        else:
            shutil.copyfile(src, dst)
        meta = folder / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(f"{commit}\n{etags[rel]}\n{time.time()}\n")
    return folder


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    baseline: str | None = None  # label of the case it is compared with
    seconds: list[float] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)


def drop_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def settle() -> None:
    """Flush dirty pages left by the previous measurement so it does not slow this one."""
    os.sync()


def plain_copy(src_dir: Path, names: list[str], dest: Path) -> float:
    settle()
    started = time.perf_counter()
    for rel in names:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_dir / rel, dest / rel)
    elapsed = time.perf_counter() - started
    drop_dir(dest)
    return elapsed


def raw_http(hub_url: str, commit: str, names: list[str], dest: Path) -> float:
    dest.mkdir(parents=True)
    files = []
    for i, rel in enumerate(names):
        files.append([f"{hub_url}/{REPO_ID}/resolve/{commit}/{rel}", str(dest / f"{i}.bin")])
    settle()
    done = subprocess.run(
        [sys.executable, __file__, "--raw-get", json.dumps({"files": files})],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"raw HTTP GET failed:\n{done.stderr[-2000:]}")
    drop_dir(dest)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


@dataclass
class TransportRun:
    seconds: float
    plan_s: float
    verify_s: float
    verified_files: int
    hard_linked: bool
    progress_events: int
    child_start_s: float


async def _download(
    settings_kwargs: dict[str, object], transport_name: str
) -> tuple[float, object, int]:
    from prometheus_client import CollectorRegistry

    from studio_ai.adapters.model_download import ModelDownloader
    from studio_ai.domain.model_ids import model_dir_name
    from studio_ai.runtime.metrics import ConsumerMetrics
    from studio_ai.runtime.settings import Settings
    from studio_ai.schemas.models import (
        DownloadProgress,
        EngineKind,
        Modality,
        ModelDownloadRequested,
        ModelTask,
        Transport,
    )

    settings = Settings(**settings_kwargs)  # type: ignore[arg-type]
    downloader = ModelDownloader(settings, ConsumerMetrics.create(CollectorRegistry()))
    request = ModelDownloadRequested(
        download_id=uuid.uuid4(),
        model_id=MODEL_ID,
        hub_repo_id=REPO_ID,
        revision=None,
        transport=Transport(transport_name),
        gated=False,
        local_dir=model_dir_name(MODEL_ID),
        modality=Modality.TEXT,
        task=ModelTask.FAST_TEXT,
        default_engine=EngineKind.TRANSFORMERS,
    )
    events: list[DownloadProgress] = []

    async def on_progress(progress: DownloadProgress) -> None:
        events.append(progress)

    async def cancel_requested() -> bool:
        return False

    started = time.perf_counter()
    outcome = await downloader.download(
        request, on_progress=on_progress, cancel_requested=cancel_requested
    )
    return time.perf_counter() - started, outcome, len(events)


def run_transport(
    transport: str, *, models_dir: Path, staging_dir: Path | None, hub_url: str
) -> TransportRun:
    from studio_ai.adapters.model_download import ModelDownloader
    from studio_ai.adapters.model_transfer import plan_transfer, verify_files
    from studio_ai.domain.model_ids import model_dir_name
    from studio_ai.runtime.metrics import ConsumerMetrics
    from studio_ai.runtime.settings import Settings
    from studio_ai.schemas.models import ModelInstalled, Transport

    settings_kwargs: dict[str, object] = {
        "models_dir": models_dir,
        "staging_dir": staging_dir,
        "mirror_endpoint": hub_url,
        "download_progress_interval_s": 1.0,
    }
    models_dir.mkdir(parents=True)
    settle()
    seconds, outcome, n_events = asyncio.run(_download(settings_kwargs, transport))
    if not isinstance(outcome, ModelInstalled):
        raise RuntimeError(f"the {transport} transport did not install the model: {outcome!r}")
    local_dir = Path(outcome.local_path)
    weights = next(local_dir.glob("*.safetensors"))
    hard_linked = weights.stat().st_nlink > 1

    # Plan and verify alone, on the folder just installed.
    from prometheus_client import CollectorRegistry

    downloader = ModelDownloader(
        Settings(**settings_kwargs),  # type: ignore[arg-type]
        ConsumerMetrics.create(CollectorRegistry()),
    )
    source = downloader.source_for(Transport(transport))
    started = time.perf_counter()
    plan = plan_transfer(source, REPO_ID, None, dir_name=model_dir_name(MODEL_ID), gated=False)
    plan_s = time.perf_counter() - started
    started = time.perf_counter()
    verify_files(local_dir, plan)
    verify_s = time.perf_counter() - started
    drop_dir(models_dir)
    return TransportRun(
        child_start_s=child_start(transport),
        seconds=seconds,
        plan_s=plan_s,
        verify_s=verify_s,
        verified_files=outcome.verified_files,
        hard_linked=hard_linked,
        progress_events=n_events,
    )


CHILD_IMPORTS = {
    # What the transfer child imports before it moves a byte (see model_transfer.run_transfer).
    "local": "import studio_ai.adapters.model_transfer",
    "mirror": "import studio_ai.adapters.model_transfer; "
    "from huggingface_hub import snapshot_download",
}


def child_start(transport: str) -> float:
    """Seconds to start the transfer child's interpreter and do its imports (no transfer)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD_IMPORTS[transport]], check=True)
    return time.perf_counter() - started


# --- report --------------------------------------------------------------------------------------


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else float("inf")


def report(cases: dict[str, Case], nbytes: int) -> None:
    width = max(len(c.label) for c in cases.values()) + 2
    print(
        f"\n{'case':<{width}}{'median s':>10}{'MB/s':>10}{'best MB/s':>11}  "
        "ratio (median of per-repeat ratios)"
    )
    for case in cases.values():
        med = statistics.median(case.seconds)
        line = (
            f"{case.label:<{width}}{med:>10.3f}{mbps(nbytes, med):>10.1f}"
            f"{mbps(nbytes, min(case.seconds)):>11.1f}"
        )
        if case.baseline is not None:
            base = cases[case.baseline]
            # throughput ratio = baseline seconds / case seconds, paired per repeat
            ratios = [b / s for b, s in zip(base.seconds, case.seconds, strict=True)]
            line += f"  {statistics.median(ratios):.2f}x of '{base.label}'"
        if case.notes:
            line += f"  [{'; '.join(sorted(case.notes))}]"
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.raw_get:
        raw_get_child(args.raw_get)
        return 0

    from studio_ai.devkit.hub_server import HubServer

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=args.tmp_dir))
    cross_root: Path | None = None
    hub: HubServer | None = None
    try:
        print(f"work area: {work}")
        t0 = time.perf_counter()
        model = create_fake_model(work / "repos" / REPO_ID, args.size_mb * MB, args.files)
        hub = HubServer(work / "repos").start()
        snapshot = hub.state.index.get(REPO_ID)  # hashes the files now, not inside a timing
        assert snapshot is not None
        etags = {rel: snapshot.files[rel].etag for rel in model.wanted}
        link_staging = work / "staging-same-fs"
        stage_for_local(model, link_staging, link=True, commit=snapshot.sha, etags=etags)

        cross_dir = Path(args.cross_fs_dir) if args.cross_fs_dir else None
        cross_note = ""
        if cross_dir is not None and cross_dir.is_dir():
            if os.stat(cross_dir).st_dev != os.stat(work).st_dev:
                cross_root = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=cross_dir))
                stage_for_local(model, cross_root, link=False, commit=snapshot.sha, etags=etags)
            else:
                cross_note = f"{cross_dir} is on the same filesystem as {work}"
        else:
            cross_note = f"no directory {cross_dir!s}" if cross_dir else "disabled"
        print(
            f"model: {len(model.wanted)} wanted files ({args.files} x .safetensors), "
            f"{model.wanted_bytes / MB:.1f} MB moved per case, "
            f"{model.filtered_bytes / MB:.1f} MB filtered out by the plan; "
            f"setup {time.perf_counter() - t0:.1f} s; repeats: {args.repeat}"
        )
        if cross_root is not None:
            print(f"real-copy staging: {cross_root} (another filesystem than the models dir)")
        else:
            print(f"real-copy case skipped ({cross_note}): only the hard-link case is reported")

        cases: dict[str, Case] = {
            "copy": Case("A plain copy, same fs"),
            "local_link": Case("local transport, hard-link", baseline="copy"),
        }
        if cross_root is not None:
            cases["copy_x"] = Case("B plain copy, across fs")
            cases["local_copy"] = Case("local transport, real copy", baseline="copy_x")
        cases["raw"] = Case("C raw HTTP GET, 1 stream")
        cases["mirror_vs_copy"] = Case("mirror transport", baseline="copy")
        cases["mirror_vs_raw"] = Case("mirror transport", baseline="raw")
        phases: dict[str, list[TransportRun]] = {"local_link": [], "local_copy": [], "mirror": []}

        out = work / "out"
        for i in range(args.repeat):
            print(f"repeat {i + 1}/{args.repeat} ...", flush=True)
            cases["copy"].seconds.append(plain_copy(model.repo_dir, model.wanted, out / "copy"))
            run = run_transport(
                "local", models_dir=out / "models", staging_dir=link_staging, hub_url=hub.url
            )
            phases["local_link"].append(run)
            cases["local_link"].seconds.append(run.seconds)
            cases["local_link"].notes.add("hard-linked" if run.hard_linked else "COPIED")
            if cross_root is not None:
                staged = cross_root / next(iter(os.listdir(cross_root)))
                cases["copy_x"].seconds.append(plain_copy(staged, model.wanted, out / "copy-x"))
                run = run_transport(
                    "local", models_dir=out / "models", staging_dir=cross_root, hub_url=hub.url
                )
                phases["local_copy"].append(run)
                cases["local_copy"].seconds.append(run.seconds)
                cases["local_copy"].notes.add("HARD-LINKED" if run.hard_linked else "copied")
            cases["raw"].seconds.append(raw_http(hub.url, snapshot.sha, model.wanted, out / "raw"))
            run = run_transport(
                "mirror", models_dir=out / "models", staging_dir=None, hub_url=hub.url
            )
            phases["mirror"].append(run)
            cases["mirror_vs_copy"].seconds.append(run.seconds)
            cases["mirror_vs_raw"].seconds.append(run.seconds)

        report(cases, model.wanted_bytes)
        print(
            "\nwhere a transport's time goes (medians; plan, verify and the child's start are "
            "timed again alone):"
        )
        for name, runs in phases.items():
            if not runs:
                continue
            total = statistics.median(r.seconds for r in runs)
            plan_s = statistics.median(r.plan_s for r in runs)
            verify_s = statistics.median(r.verify_s for r in runs)
            start_s = statistics.median(r.child_start_s for r in runs)
            rest = statistics.median(
                r.seconds - r.plan_s - r.verify_s - r.child_start_s for r in runs
            )
            rest_text = (
                f"~{rest:.3f} s ({mbps(model.wanted_bytes, rest):.0f} MB/s)"
                if rest > 0.02
                else "~0 s (within the noise)"
            )
            print(
                f"  {name:<10} total {total:.3f} s = plan {plan_s:.3f} s"
                f" + verify {verify_s:.3f} s ({mbps(model.wanted_bytes, verify_s):.0f} MB/s;"
                f" {runs[0].verified_files} files checked)"
                f" + child start {start_s:.3f} s + rest (moving the bytes) {rest_text};"
                f" {runs[0].progress_events} progress callback(s)"
            )
        return 0
    finally:
        if hub is not None:
            hub.stop()
        if cross_root is not None:
            drop_dir(cross_root)
        drop_dir(work)


if __name__ == "__main__":
    raise SystemExit(main())
