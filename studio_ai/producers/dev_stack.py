"""`studio-ai dev up` (what `make run` starts): a local hub mirror serving tiny models, the
gateway and every consumer group, as child processes, until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from studio_ai.consumers.app import GROUPS
from studio_ai.domain.receipts import new_private_key, private_key_seed
from studio_ai.runtime.settings import PACKAGED_CATALOG, Settings

DEV_CATALOG = Path(__file__).resolve().parents[2] / "deploy" / "local" / "catalog.dev.yaml"
DEV_PLANS = DEV_CATALOG.with_name("plans.dev.yaml")
DEV_WORKSPACE = "demo"
# The extractive engine's pool and the tiny models' default pools (one worker serves them all).
DEV_POOLS = ("builtin", "tiny-llama", "tiny-gemma3")


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")


def run_dev_stack(settings: Settings, *, hub_port: int, console: Console) -> int:
    state = Path(os.environ.get("STUDIO_LOCAL_STATE", ".local/state")).resolve()
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    hub_repos = state / "dev-hub"
    mirror = f"http://127.0.0.1:{hub_port}"
    env = {
        **os.environ,
        "STUDIO_MIRROR_ENDPOINT": os.environ.get("STUDIO_MIRROR_ENDPOINT", mirror),
        "STUDIO_MODELS_DIR": os.environ.get("STUDIO_MODELS_DIR", str(state / "models")),
        "STUDIO_CATALOG_PATHS": os.environ.get(
            "STUDIO_CATALOG_PATHS", json.dumps([str(PACKAGED_CATALOG), str(DEV_CATALOG)])
        ),
        "STUDIO_PLANS_PATH": os.environ.get("STUDIO_PLANS_PATH", str(DEV_PLANS)),
        # Every workspace starts on pro here; `studio-ai workspaces set-plan` changes one.
        "STUDIO_DEFAULT_PLAN": os.environ.get("STUDIO_DEFAULT_PLAN", "pro"),
        "PYTHONUNBUFFERED": "1",
    }
    if settings.receipt_signing_key is None:
        env["STUDIO_RECEIPT_SIGNING_KEY"] = _dev_receipt_key(state)
    exe = str(Path(sys.executable).with_name("studio-ai"))
    commands = {
        "hub-mirror": [
            sys.executable,
            "-m",
            "studio_ai.devkit.hub_server",
            "--repos",
            str(hub_repos),
            "--port",
            str(hub_port),
            "--tiny-models",
        ],
        "gateway": [exe, "gateway"],
        "consumers": [exe, "worker", "run", *[a for g in GROUPS for a in ("--group", g)]],
        "inference": [
            exe,
            "worker",
            "inference",
            *[a for pool in DEV_POOLS for a in ("--pool", pool)],
            "--metrics-port",
            str(settings.metrics_port + 1),
        ],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def stop_on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        for name, argv in commands.items():
            log = logs / f"{name}.log"
            procs[name] = subprocess.Popen(
                argv,
                env=env,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            console.print(f"started {name} (pid {procs[name].pid}), log: {log}")
            if name == "hub-mirror":
                _wait_http(f"{mirror}/api/models", procs[name], 120, log)
        gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
        _wait_http(f"{gateway}/healthz", procs["gateway"], 60, logs / "gateway.log")
        key = _dev_admin_key(state, exe, env, console)
        console.print(
            "\n[bold green]studio-ai is up[/bold green]\n"
            f"  API docs        {gateway}/docs\n"
            f"  gateway metrics {gateway}/metrics\n"
            f"  worker metrics  http://{settings.metrics_host}:{settings.metrics_port}/metrics\n"
            f"  inference       http://{settings.metrics_host}:{settings.metrics_port + 1}/metrics"
            f" (pools {', '.join(DEV_POOLS)})\n"
            f"  hub mirror      {mirror} (tiny models: studio-ai-test/tiny-llama, tiny-gemma3)\n"
            f"  admin key       {key}  (workspace {DEV_WORKSPACE!r}; "
            f"saved in {state / 'dev-admin-key'})\n\n"
            "try:\n"
            f"  export STUDIO_API_KEY={key}\n"
            "  .venv/bin/studio-ai models download studio-ai-test/tiny-llama --transport mirror\n"
            "  .venv/bin/studio-ai models list\n"
            '  .venv/bin/studio-ai jobs submit "Semaglutide lowered weight. It was safe." '
            "--model studio-ai-test/tiny-llama\n\n"
            "Ctrl-C stops everything.",
            soft_wrap=True,
        )
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        dead = next(name for name, p in procs.items() if p.poll() is not None)
        console.print(
            f"[red]{dead} exited[/red] (code {procs[dead].returncode}); "
            f"see {logs / (dead + '.log')}"
        )
        return 1
    except KeyboardInterrupt:
        console.print("stopping…")
        return 0
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _dev_admin_key(state: Path, exe: str, env: dict[str, str], console: Console) -> str:
    path = state / "dev-admin-key"
    if path.exists():
        return path.read_text().strip()
    done = subprocess.run(
        [
            exe,
            "keys",
            "create",
            "--workspace",
            DEV_WORKSPACE,
            "--user",
            "dev-admin",
            "--role",
            "admin",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = done.stdout.strip().splitlines()[-1]
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _dev_receipt_key(state: Path) -> str:
    """A receipt signing key made once for this machine's `make run`, never for production."""
    path = state / "receipt-signing-key"
    if path.exists():
        return path.read_text().strip()
    seed = private_key_seed(new_private_key())
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(seed + "\n")
    return seed
