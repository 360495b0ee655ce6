"""The running system for integration and end-to-end tests.

Kafka and the MongoDB-wire server are the real ones `make test` starts (deploy/local); this
module starts the gateway and the consumers as real processes against them, and hub servers
(the devkit's hub-compatible server) over tiny models the tests create.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from studio_ai.consumers.app import GROUPS
from studio_ai.devkit.hub_server import HubServer
from studio_ai.devkit.research_server import ResearchServer
from studio_ai.producers.dev_stack import DEV_PLANS
from studio_ai.runtime.settings import PACKAGED_CATALOG

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
STUDIO_AI = str(Path(sys.executable).with_name("studio-ai"))
TINY_LLAMA = "studio-ai-test/tiny-llama"
TINY_GEMMA = "studio-ai-test/tiny-gemma3"
GATED_REPO = "studio-ai-test/tiny-llama-gated"
# The pools of the stack's inference worker: the extractive engine's and the tiny models'.
INFERENCE_POOLS = ("builtin", "tiny-llama", "tiny-gemma3")
# Recorded real Crossref and arXiv responses (see SOURCES.md there).
RESEARCH_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "research"


def kafka_bootstrap() -> str:
    return os.environ.get(
        "STUDIO_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('STUDIO_KAFKA_PORT', '9092')}"
    )


def mongo_url() -> str:
    return os.environ.get(
        "STUDIO_MONGO_URL", f"mongodb://127.0.0.1:{os.environ.get('STUDIO_MONGO_PORT', '27017')}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.2
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@dataclass
class Stack:
    env: dict[str, str]
    gateway_url: str
    workdir: Path
    hub: HubServer
    mirror: HubServer
    research: ResearchServer
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [STUDIO_AI, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        self.procs[name] = proc
        return proc

    def start_consumers(self, name: str = "consumers") -> subprocess.Popen[bytes]:
        """Every consumer group of studio_ai.consumers.app.GROUPS, in one process."""
        groups = [arg for group in GROUPS for arg in ("--group", group)]
        return self.start(name, "worker", "run", *groups, "--metrics-port", str(free_port()))

    def start_inference(
        self, name: str = "inference", pools: tuple[str, ...] = INFERENCE_POOLS, *extra: str
    ) -> subprocess.Popen[bytes]:
        args = ["worker", "inference", "--metrics-port", str(free_port()), *extra]
        for pool in pools:
            args += ["--pool", pool]
        return self.start(name, *args)

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def cli(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STUDIO_AI, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            check=False,
        )

    def create_key(self, workspace: str, user: str, role: str) -> str:
        done = self.cli("keys", "create", "--workspace", workspace, "--user", user, "--role", role)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.gateway_url, headers=headers, timeout=30)


def catalog_entry(model_id: str, repo: str, **extra: Any) -> dict[str, Any]:
    """A catalog entry for a tiny text model (override fields with `extra`)."""
    return {
        "model_id": model_id,
        "display_name": model_id,
        "hub_repo_id": repo,
        "modality": "text",
        "task": "fast_text",
        "default_engine": "transformers",
        "gated": False,
        "approx_size_bytes": 500_000,
        "license": "apache-2.0",
        **extra,
    }


def write_test_catalog(path: Path) -> Path:
    entry = catalog_entry
    models = [
        entry(TINY_LLAMA, TINY_LLAMA),
        entry(TINY_GEMMA, TINY_GEMMA, modality="multimodal", task="image_text"),
        entry(GATED_REPO, GATED_REPO, gated=True),
        entry("studio-ai-test/missing", "studio-ai-test/no-such-repo"),
    ]
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def _check_infrastructure() -> None:
    for name, hostport in (
        ("Kafka", kafka_bootstrap()),
        ("the MongoDB-wire store", mongo_url().split("//")[-1]),
    ):
        host, _, port = hostport.split(",")[0].rpartition(":")
        try:
            socket.create_connection(
                (host or "127.0.0.1", int(port.split("/")[0])), timeout=2
            ).close()
        except OSError:
            pytest.fail(
                f"{name} is not reachable at {hostport}: run the tests with `make test`, which "
                "starts it (or `make services-up` first)"
            )


@pytest.fixture(scope="session")
def hub_repos(tiny_repos_dir: Path) -> Path:
    gated = tiny_repos_dir / GATED_REPO
    if not gated.exists():
        shutil.copytree(tiny_repos_dir / TINY_LLAMA, gated)
    return tiny_repos_dir


@pytest.fixture(scope="session")
def stack(hub_repos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _check_infrastructure()
    workdir = tmp_path_factory.mktemp("stack")
    staging = workdir / "staging"
    staging.mkdir()
    hub = HubServer(hub_repos, gated={GATED_REPO}, valid_tokens={"hf_test_token"}).start()
    mirror = HubServer(hub_repos, port=free_port()).start()
    research = ResearchServer(RESEARCH_FIXTURES).start()
    catalog = write_test_catalog(workdir / "catalog.test.yaml")
    session = uuid.uuid4().hex[:10]
    port = free_port()
    env = {
        **os.environ,
        "STUDIO_KAFKA_BOOTSTRAP": kafka_bootstrap(),
        "STUDIO_MONGO_URL": mongo_url(),
        "STUDIO_MONGO_DB": f"studio_test_{session}",
        "STUDIO_CONSUMER_GROUP_PREFIX": f"test-{session}.",
        "STUDIO_MODELS_DIR": str(workdir / "models"),
        "STUDIO_CATALOG_PATHS": json.dumps([str(PACKAGED_CATALOG), str(catalog)]),
        "STUDIO_PLANS_PATH": str(DEV_PLANS),
        # Unlimited unless a test assigns a plan: the other tests run many jobs at once.
        "STUDIO_DEFAULT_PLAN": "enterprise",
        "STUDIO_HF_ENDPOINT": hub.url,
        "STUDIO_MIRROR_ENDPOINT": mirror.url,
        "STUDIO_STAGING_DIR": str(staging),
        "STUDIO_GATEWAY_PORT": str(port),
        "STUDIO_DOWNLOAD_PROGRESS_INTERVAL_S": "0.2",
        "STUDIO_DOWNLOAD_ATTEMPTS": "2",
        "STUDIO_DOWNLOAD_RETRY_BACKOFF_S": "0.2",
        "STUDIO_DOWNLOAD_METADATA_TIMEOUT_S": "10",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "STUDIO_WORKER_HEARTBEAT_S": "0.5",
        "STUDIO_WORKER_LIVE_TTL_S": "3",
        "STUDIO_INFERENCE_BACKOFF_S": "0.2",
        "STUDIO_INFERENCE_PROGRESS_INTERVAL_S": "0.1",
        "STUDIO_CROSSREF_BASE_URL": research.url,
        "STUDIO_CROSSREF_MAILTO": "studio-tests@databiomics.example",
        "STUDIO_ARXIV_BASE_URL": research.url,
        "STUDIO_ARXIV_MIN_INTERVAL_S": "0",
        "STUDIO_RESEARCH_ATTEMPTS": "2",
        "STUDIO_RESEARCH_BACKOFF_S": "0.1",
        "STUDIO_RESEARCH_TIMEOUT_S": "5",
        "STUDIO_RECEIPT_SIGNING_KEY": "p1UCtTWkete9pV6scSD65JpJUdnbezt8DXd4GZ2HQOc=",  # test key
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("HF_TOKEN", "LLM_BASE_URL", "LLM_API_KEY"):
        env.pop(name, None)
    env.pop("HF_TOKEN", None)
    env.pop("STUDIO_HF_TOKEN", None)
    stack = Stack(
        env=env,
        gateway_url=f"http://127.0.0.1:{port}",
        workdir=workdir,
        hub=hub,
        mirror=mirror,
        research=research,
    )
    stack.start("gateway", "gateway")
    stack.start_consumers()
    stack.start_inference()

    def gateway_up() -> bool:
        if stack.procs["gateway"].poll() is not None:
            raise AssertionError("gateway exited:\n" + stack.log_tail("gateway"))
        try:
            return httpx.get(f"{stack.gateway_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(gateway_up, timeout=60, what="the gateway to answer /healthz")
    try:
        yield stack
    finally:
        for name in list(stack.procs):
            stack.kill(name)
        hub.stop()
        mirror.stop()
        research.stop()
