"""Steps that several integration and end-to-end tests take."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.stack import Stack, wait_until


def new_workspace(stack: Stack, prefix: str = "ws") -> tuple[str, httpx.Client]:
    """A fresh workspace with an admin key, and a client using it."""
    workspace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return workspace, stack.client(stack.create_key(workspace, "admin-1", "admin"))


def add_private_model(client: httpx.Client, model_id: str, repo: str, **extra: Any) -> None:
    body = {
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
    response = client.post("/admin/models", json=body)
    assert response.status_code == 201, response.text


def model(client: httpx.Client, model_id: str) -> dict[str, Any]:
    response = client.get(f"/admin/models/{model_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(
    stack: Stack, client: httpx.Client, model_id: str, statuses: set[str], timeout: float = 90
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{stack.log_tail(name)}")
        view = model(client, model_id)
        return view if view["status"] in statuses else None

    return wait_until(reached, timeout=timeout, what=f"{model_id} to be {statuses}")


def download(client: httpx.Client, model_id: str, transport: str = "hf_api") -> dict[str, Any]:
    response = client.post(
        "/admin/models/download", json={"model_id": model_id, "transport": transport}
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body
