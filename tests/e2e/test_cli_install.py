"""A new operator's path: create a key, install a model from the CLI with live progress, list it."""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

from tests.support.stack import TINY_LLAMA, Stack


def test_operator_installs_a_model_from_the_cli_and_sees_it_installed(stack: Stack) -> None:
    workspace = f"cli-{uuid.uuid4().hex[:8]}"
    key = stack.create_key(workspace, "ops", "admin")
    api = {"STUDIO_API_URL": stack.gateway_url, "STUDIO_API_KEY": key}

    done = stack.cli("models", "download", TINY_LLAMA, "--transport", "mirror", extra_env=api)
    assert done.returncode == 0, done.stderr
    assert "installed" in done.stderr
    assert "same download by hand on a worker node: studio-ai models download" in done.stderr

    listed = stack.cli("models", "list", extra_env={**api, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if TINY_LLAMA in line)
    assert "installed" in row

    again = stack.cli("models", "download", TINY_LLAMA, extra_env=api)
    assert again.returncode == 1
    assert "already installed" in again.stderr

    member = stack.create_key(workspace, "viewer", "member")
    refused = stack.cli("models", "list", extra_env={**api, "STUDIO_API_KEY": member})
    assert refused.returncode == 1
    assert "admin" in refused.stderr


def test_the_printed_python_client_command_downloads_by_hand(stack: Stack, tmp_path: Path) -> None:
    workspace = f"byhand-{uuid.uuid4().hex[:8]}"
    client = stack.client(stack.create_key(workspace, "ops", "admin"))
    accepted = client.post(
        "/admin/models/download", json={"model_id": TINY_LLAMA, "transport": "hf_api"}
    )
    assert accepted.status_code == 202
    argv = shlex.split(accepted.json()["python_client_command"])
    assert argv[:3] == ["studio-ai", "models", "download"]
    target = tmp_path / "by-hand"
    argv[argv.index("--local-dir") + 1] = str(target)
    done = stack.cli(*argv[1:])
    assert done.returncode == 0, done.stderr
    assert "installed" in done.stderr
    assert (target / "model.safetensors").is_file()
    assert (target / "config.json").is_file()
