"""The Dockerfile, its .dockerignore and its health check, offline (no Docker engine here).

The Dockerfile is parsed into instructions and checked for what the deployments rely on: the
`studio-ai` entry point, a numeric non-root user (Kubernetes' runAsNonRoot), the two ports,
binding 0.0.0.0, a HEALTHCHECK, and the torch pin. The health check script is run for real
against a server on 127.0.0.1.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studio_ai.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage (each FROM starts one); comments and line
    continuations handled as Docker does."""
    stages: list[list[Instruction]] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, value = logical.partition(" ")
        logical = ""
        instruction = Instruction(keyword.upper(), value.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        elif instruction.keyword != "ARG" and not stages:
            raise AssertionError(f"{instruction.keyword} before the first FROM")
        if stages:
            stages[-1].append(instruction)
    return stages


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.value):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def only(stage: list[Instruction], keyword: str) -> str:
    values = [i.value for i in stage if i.keyword == keyword]
    assert len(values) == 1, f"expected one {keyword} in the final stage, found {values}"
    return values[0]


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def test_image_is_slim_python_311_built_in_two_stages(stages: list[list[Instruction]]) -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.11-slim(-\w+)?", base.group(1)), base
    assert [s[0].value for s in stages] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    runs = " ".join(i.value for i in stages[0] if i.keyword == "RUN")
    assert "pip install ." in runs
    # The runtime stage installs nothing: it copies the built virtualenv.
    assert "COPY --from=build /opt/venv /opt/venv" in [f"COPY {i.value}" for i in stages[1]]


def test_entrypoint_is_the_studio_ai_cli(final: list[Instruction]) -> None:
    assert json.loads(only(final, "ENTRYPOINT")) == ["studio-ai"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "studio-ai" in scripts, "the ENTRYPOINT must be a console script pip installs"


def test_runs_as_a_numeric_non_root_user(final: list[Instruction]) -> None:
    user = only(final, "USER")
    uid, _, gid = user.partition(":")
    # Numeric, so the kubelet can check runAsNonRoot without a runAsUser.
    assert uid.isdigit() and int(uid) != 0, user
    assert not gid or (gid.isdigit() and int(gid) != 0), user
    runs = " ".join(i.value for i in final if i.keyword == "RUN")
    assert f"--uid {uid}" in runs, "the user is created in the image"


def test_exposes_the_gateway_and_metrics_ports_bound_to_all_interfaces(
    final: list[Instruction],
) -> None:
    exposed = {int(p.split("/")[0]) for p in only(final, "EXPOSE").split()}
    env = env_of(final)
    defaults = Settings.model_fields
    assert int(env["STUDIO_GATEWAY_PORT"]) == defaults["gateway_port"].default
    assert int(env["STUDIO_METRICS_PORT"]) == defaults["metrics_port"].default
    assert exposed == {int(env["STUDIO_GATEWAY_PORT"]), int(env["STUDIO_METRICS_PORT"])}
    assert env["STUDIO_GATEWAY_HOST"] == env["STUDIO_METRICS_HOST"] == "0.0.0.0"
    # Writable paths under /tmp (an emptyDir under a read-only root filesystem) and /models.
    assert env["HF_HOME"].startswith("/tmp/")
    assert env["STUDIO_MODELS_DIR"] == "/models"


def test_has_a_healthcheck_that_the_image_ships(final: list[Instruction]) -> None:
    check = only(final, "HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert command, check
    assert json.loads(command) == ["studio-ai-healthcheck"]
    for option in ("--interval=", "--timeout=", "--start-period="):
        assert option in options
    copies = [i.value for i in final if i.keyword == "COPY"]
    assert any(
        c.endswith("deploy/docker/healthcheck.py /usr/local/bin/studio-ai-healthcheck")
        and "--chmod=0755" in c
        for c in copies
    ), copies


def test_torch_build_arg_matches_the_pyproject_pin(stages: list[list[Instruction]]) -> None:
    args = dict(i.value.split("=", 1) for i in stages[0] if i.keyword == "ARG" and "=" in i.value)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [d for d in deps if re.match(r"torch\s*==", d)]
    assert args["TORCH_VERSION"] == torch.split("==")[1].strip()
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu"), "CPU wheels by default (documented)"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent folder counts."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(candidate, pattern[3:])
            ):
                ignored = not negate
                break
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_drops_secrets_and_state(
    stages: list[list[Instruction]],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources: list[str] = []
    for stage in stages:
        for instruction in stage:
            if instruction.keyword == "COPY" and "--from=" not in instruction.value:
                words = [w for w in instruction.value.split() if not w.startswith("--")]
                sources += words[:-1]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not _ignored(source.rstrip("/"), patterns), f".dockerignore drops {source}"
    for secret_or_state in (".env", ".venv", ".local", ".git", ".models", "tests", "k8s"):
        assert _ignored(secret_or_state, patterns), f".dockerignore lets {secret_or_state} in"
    assert _ignored("studio_ai/__pycache__/x.pyc", patterns)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = 200 if self.path == "/healthz" else 404
        code = type(self).status if code == 200 else code
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_check(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**clean, "STUDIO_HEALTHCHECK_TIMEOUT_S": "2", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_passes_on_the_metrics_port_of_a_worker(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, _ = health_server
    result = _run_check(STUDIO_METRICS_PORT=str(port), STUDIO_GATEWAY_PORT=str(_free_port()))
    assert result.returncode == 0, result.stderr


def test_healthcheck_passes_on_the_gateway_port(health_server: tuple[int, type[_Health]]) -> None:
    port, _ = health_server
    result = _run_check(STUDIO_METRICS_PORT=str(_free_port()), STUDIO_GATEWAY_PORT=str(port))
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_while_the_process_is_starting(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, handler = health_server
    handler.status = 503  # what /healthz answers before the broker runs
    result = _run_check(STUDIO_METRICS_PORT=str(port), STUDIO_GATEWAY_PORT=str(_free_port()))
    assert result.returncode == 1
    assert "HTTP 503" in result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    result = _run_check(
        STUDIO_METRICS_PORT=str(_free_port()), STUDIO_GATEWAY_PORT=str(_free_port())
    )
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: ")


def test_healthcheck_url_override_is_the_only_url_asked(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, _ = health_server
    ok = _run_check(STUDIO_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/healthz")
    assert ok.returncode == 0, ok.stderr
    # A URL that fails is not rescued by the default ports answering.
    wrong = _run_check(
        STUDIO_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/nope", STUDIO_METRICS_PORT=str(port)
    )
    assert wrong.returncode == 1
    assert "HTTP 404" in wrong.stderr
