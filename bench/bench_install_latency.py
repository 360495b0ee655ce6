"""Install latency through the whole system: `POST /admin/models/download` to `installed`.

Runs the real gateway and consumers (downloader + model projector) as subprocesses against
the Kafka broker and MongoDB-wire store named by STUDIO_KAFKA_BOOTSTRAP / STUDIO_MONGO_URL
(exit status 2 if either is unreachable), with a hub server in this process serving the tiny
Llama. Each run uses a new workspace and admin key and removes the installed folder first, so
every run downloads again; the model's status is polled with GET /admin/models/{id} every
50 ms until it is `installed`.

Baseline, same run: a direct in-process `snapshot_download` of the same files from the same
hub server into a fresh folder, i.e. the bytes without the broker, the store, the child process,
progress reporting and verification.

The first pipeline run (consumer group join, connections, imports) is reported apart as the
cold run and left out of p50/max. Everything started is stopped at the end (also on Ctrl-C),
the temporary folder is removed and the bench database dropped. Consumer groups get a unique
prefix so that other workers on the same broker do not take the bench's messages; Kafka keeps
those (empty) groups until its offsets retention expires.

    .venv/bin/python bench/bench_install_latency.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

TINY_REPO = "studio-ai-test/tiny-llama"
MODEL_ID = "bench/tiny-llama"
STUDIO_AI = str(Path(sys.executable).with_name("studio-ai"))
CATALOG_ENTRY: dict[str, Any] = {
    "model_id": MODEL_ID,
    "display_name": "x",
    "hub_repo_id": TINY_REPO,
    "modality": "text",
    "task": "fast_text",
    "default_engine": "transformers",
    "gated": False,
    "approx_size_bytes": 500_000,
    "license": "apache-2.0",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_RUNS") or 5),
        help="measured runs of the pipeline and of the baseline; env BENCH_RUNS",
    )
    parser.add_argument(
        "--poll-ms",
        type=float,
        default=50.0,
        help="interval of GET /admin/models/{id} while waiting (resolution of the figures)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=float(os.environ.get("BENCH_RUN_TIMEOUT_S") or 30),
        help="give up on one install after this many seconds; env BENCH_RUN_TIMEOUT_S",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=Path(os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()),
        help="parent of the work area; env BENCH_TMPDIR",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work area (logs) and the bench database, for debugging",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


# --- services ------------------------------------------------------------------------------------


def kafka_bootstrap() -> str:
    return os.environ.get("STUDIO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def mongo_url() -> str:
    return os.environ.get("STUDIO_MONGO_URL", "mongodb://127.0.0.1:27017")


def check_services() -> str | None:
    """None if Kafka and the store answer, else what is wrong."""
    problems: list[str] = []
    bootstrap = kafka_bootstrap()
    reachable = False
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
                reachable = True
                break
        except (OSError, ValueError):
            continue
    if not reachable:
        problems.append(f"Kafka is not reachable at {bootstrap} (STUDIO_KAFKA_BOOTSTRAP)")
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url(), serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        problems.append(
            f"the MongoDB-wire store is not reachable at {mongo_url()} (STUDIO_MONGO_URL): "
            f"{type(exc).__name__}"
        )
    finally:
        client.close()
    return "; ".join(problems) or None


def drop_database(name: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url(), serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(name)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """Child processes, each in its own session so a whole tree can be stopped by its id."""

    workdir: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [STUDIO_AI, *args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode}; its log ends with:\n"
                    f"{self.log_tail(name)}"
                )

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- measurements --------------------------------------------------------------------------------


@dataclass
class InstallRun:
    accepted_s: float
    first_progress_s: float | None
    downloader_done_s: float
    installed_s: float


class StuckRun(Exception):
    """The install did not become `installed` in time (the system is still up)."""


def create_admin_key(procs: Processes, workspace: str) -> str:
    """`studio-ai keys create ... --role admin`; the key is the last line of its stdout."""
    argv = [STUDIO_AI, "keys", "create", "--workspace", workspace, "--user", "bench"]
    proc = subprocess.Popen(
        [*argv, "--role", "admin"],
        env=procs.env,
        cwd=procs.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except BaseException:  # also Ctrl-C: do not leave it running (or unreaped) behind us
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"studio-ai keys create failed ({proc.returncode}):\n{err}")
    return out.strip().splitlines()[-1].strip()


def install_once(
    gateway: str, key: str, *, poll_s: float, timeout: float, procs: Processes
) -> InstallRun:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=10) as client:
        client.get("/healthz")  # open the connection before the clock starts
        wall0 = time.time()
        t0 = time.perf_counter()
        response = client.post("/admin/models/download", json={"model_id": MODEL_ID})
        accepted = time.perf_counter() - t0
        if response.status_code != 202:
            raise RuntimeError(
                f"POST /admin/models/download: {response.status_code} {response.text}"
            )
        first_progress: float | None = None
        deadline = t0 + timeout
        while True:
            view = client.get(f"/admin/models/{MODEL_ID}")
            now = time.perf_counter() - t0
            view.raise_for_status()
            body = view.json()
            status = body["status"]
            progress = body.get("progress")
            # The gateway records 0 of 0 bytes at the request; the downloader's reports carry
            # the planned total.
            if first_progress is None and progress and progress["bytes_total"] > 0:
                first_progress = now
            if status == "installed":
                installed_at = datetime.fromisoformat(body["installation"]["installed_at"])
                return InstallRun(
                    accepted_s=accepted,
                    first_progress_s=first_progress,
                    downloader_done_s=installed_at.timestamp() - wall0,
                    installed_s=now,
                )
            if status == "failed":
                raise RuntimeError(f"the install failed: {json.dumps(body.get('failure'))}")
            if time.perf_counter() > deadline:
                procs.check_alive()
                done = bool(progress) and 0 < progress["bytes_total"] == progress["bytes_done"]
                raise StuckRun(
                    f"status {status!r}, progress {json.dumps(progress)}"
                    + (
                        ": the downloader reported every byte, yet `installed` never showed "
                        "(a lost update in the projection?)"
                        if done
                        else ""
                    )
                )
            time.sleep(poll_s)


def child_start() -> float:
    """Seconds to start a transfer child like the downloader's and import what it imports."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import studio_ai.adapters.model_transfer; "
            "from huggingface_hub import snapshot_download",
        ],
        check=True,
    )
    return time.perf_counter() - started


def baseline_once(hub_url: str, dest: Path) -> float:
    """A direct snapshot_download of the files the pipeline fetches, into a fresh folder."""
    from huggingface_hub import snapshot_download

    from studio_ai.adapters.model_transfer import ALLOW_PATTERNS, IGNORE_PATTERNS

    started = time.perf_counter()
    snapshot_download(
        TINY_REPO,
        endpoint=hub_url,
        local_dir=dest,
        allow_patterns=list(ALLOW_PATTERNS),
        ignore_patterns=list(IGNORE_PATTERNS),
        token=False,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


# --- report --------------------------------------------------------------------------------------


def p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):>8.3f}{max(values):>8.3f}"


def report(
    cold: InstallRun | None,
    runs: list[InstallRun],
    baseline: list[float],
    starts: list[float],
    files: int,
    size: int,
) -> None:
    print(
        f"\ninstall of {MODEL_ID} ({TINY_REPO}: {files} files, {size / 1000:.0f} kB), "
        f"{len(runs)} runs, seconds from the POST"
    )
    print(f"{'':<48}{'p50':>8}{'max':>8}{'cold':>8}")
    rows = [
        ("POST /admin/models/download answered 202", "accepted_s"),
        ("first downloader progress visible in GET", "first_progress_s"),
        ("downloader verified the files (installed_at)", "downloader_done_s"),
        ("pipeline: `installed` visible in GET", "installed_s"),
    ]
    for label, attr in rows:
        values = [v for r in runs if (v := getattr(r, attr)) is not None]
        if not values:
            print(f"  {label:<46}  (never seen: the install finished first)")
            continue
        cold_value = getattr(cold, attr) if cold is not None else None
        cold_text = f"{cold_value:>8.3f}" if cold_value is not None else f"{'-':>8}"
        print(f"  {label:<46}{p50_max(values)}{cold_text}")
    lag = [r.installed_s - r.downloader_done_s for r in runs]
    print(f"  {'  of which installed_at -> visible (projector)':<46}{p50_max(lag)}")
    print(f"  {'baseline: direct snapshot_download':<46}{p50_max(baseline)}")
    print(
        f"  {'for scale: transfer child start + imports':<46}{p50_max(starts)}"
        "  (inside the downloader's time)"
    )
    pipeline = [r.installed_s for r in runs]
    p50_pipe, p50_base = statistics.median(pipeline), statistics.median(baseline)
    print(
        f"\nratio pipeline / baseline: p50 {p50_pipe / p50_base:.1f}x, "
        f"max {max(pipeline) / max(baseline):.1f}x (p50 overhead {p50_pipe - p50_base:.3f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if problem := check_services():
        print(
            f"bench_install_latency: {problem}.\nStart them (`make services-up`, or run "
            "`make bench`, which starts them) or point STUDIO_KAFKA_BOOTSTRAP / "
            "STUDIO_MONGO_URL at running ones.",
            file=sys.stderr,
        )
        return 2

    from studio_ai.devkit.hub_server import HubServer
    from studio_ai.devkit.tiny_models import create_tiny_llama
    from studio_ai.domain.model_ids import model_dir_name

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    tag = uuid.uuid4().hex[:8]
    database = f"bench_{tag}"
    work = Path(tempfile.mkdtemp(prefix="bench-install-", dir=args.tmp_dir))
    hub: HubServer | None = None
    procs: Processes | None = None
    db_used = False
    try:
        with sigterm_as_interrupt():
            repo_dir = create_tiny_llama(work / "repos" / TINY_REPO)
            files = [p for p in repo_dir.rglob("*") if p.is_file()]
            hub = HubServer(work / "repos").start()
            catalog = work / "catalog.yaml"
            catalog.write_text(json.dumps({"models": [CATALOG_ENTRY]}))  # JSON is YAML
            models_dir = work / "models"
            gateway_port, metrics_port = free_port(), free_port()
            env = {
                **os.environ,
                "STUDIO_KAFKA_BOOTSTRAP": kafka_bootstrap(),
                "STUDIO_MONGO_URL": mongo_url(),
                "STUDIO_MONGO_DB": database,
                "STUDIO_MODELS_DIR": str(models_dir),
                "STUDIO_HF_ENDPOINT": hub.url,
                "STUDIO_GATEWAY_PORT": str(gateway_port),
                "STUDIO_DOWNLOAD_PROGRESS_INTERVAL_S": "0.2",
                "STUDIO_CATALOG_PATHS": json.dumps([str(catalog)]),
                "STUDIO_DEFAULT_PLAN": "enterprise",
                "STUDIO_CONSUMER_GROUP_PREFIX": f"bench-{tag}-",
                "PYTHONUNBUFFERED": "1",
            }
            procs = Processes(work, env)
            print(
                f"work area {work}; database {database}; Kafka {kafka_bootstrap()}; hub {hub.url}",
                flush=True,
            )
            db_used = True
            started = time.perf_counter()
            procs.start("gateway", "gateway")
            procs.start(
                "consumers",
                "worker",
                "run",
                "--group",
                "downloader",
                "--group",
                "model-projector",
                "--metrics-port",
                str(metrics_port),
            )
            gateway = f"http://127.0.0.1:{gateway_port}"
            procs.wait_http(f"{gateway}/healthz", timeout=120)
            procs.wait_http(f"http://127.0.0.1:{metrics_port}/healthz", timeout=120)
            print(f"gateway and consumers up in {time.perf_counter() - started:.1f} s", flush=True)

            installed_dir = models_dir / model_dir_name(MODEL_ID)
            cold: InstallRun | None = None
            runs: list[InstallRun] = []
            stuck: list[str] = []
            for i in range(args.runs + 1):
                label = "cold run" if i == 0 else f"run {i}/{args.runs}"
                shutil.rmtree(installed_dir, ignore_errors=True)
                key = create_admin_key(procs, f"bench-{tag}-{i}")
                try:
                    run = install_once(
                        gateway,
                        key,
                        poll_s=args.poll_ms / 1000,
                        timeout=args.run_timeout,
                        procs=procs,
                    )
                except StuckRun as exc:
                    print(f"{label}: NOT installed after {args.run_timeout:.0f} s: {exc}")
                    stuck.append(label)
                    continue
                print(f"{label}: installed after {run.installed_s:.3f} s", flush=True)
                if i == 0:
                    cold = run
                else:
                    runs.append(run)
            if not runs:
                raise RuntimeError(
                    "no measured run became `installed`; consumers log:\n"
                    + procs.log_tail("consumers", 60)
                )

            baseline_dir = work / "baseline"
            baseline_once(hub.url, baseline_dir)  # imports and first connection: not counted
            baseline = [baseline_once(hub.url, baseline_dir) for _ in range(args.runs)]
            report(
                cold,
                runs,
                baseline,
                [child_start() for _ in range(args.runs)],
                files=len(files),
                size=sum(p.stat().st_size for p in files),
            )
        if stuck:
            print(
                f"\n{len(stuck)} of {args.runs + 1} installs never became `installed` "
                f"({', '.join(stuck)}): left out of the figures above; this is a failure of the "
                "system under test, not of the benchmark",
                file=sys.stderr,
            )
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench_install_latency: {exc}", file=sys.stderr)
        return 1
    finally:
        # Cleanup runs to its end: a second Ctrl-C or a TERM must not leave processes behind.
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        if procs is not None:
            procs.stop_all()
        if hub is not None:
            hub.stop()
        if args.keep:
            print(f"kept {work} and database {database}", file=sys.stderr)
        elif db_used:
            try:
                drop_database(database)
            except Exception as exc:  # cleanup is best effort; say what was left
                print(f"could not drop database {database}: {exc}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
