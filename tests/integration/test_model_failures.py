"""What an admin sees when a download cannot happen, and who may see and do what."""

from __future__ import annotations

import pytest

from tests.support.flows import add_private_model, download, model, new_workspace, wait_status
from tests.support.stack import GATED_REPO, TINY_LLAMA, Stack


def test_unknown_model_is_404_naming_the_known_ones(stack: Stack) -> None:
    _, client = new_workspace(stack)
    response = client.post("/admin/models/download", json={"model_id": "acme/not-in-catalog"})
    assert response.status_code == 404
    assert "meta-llama/Llama-3.2-1B-Instruct" in response.json()["detail"]


def test_unknown_transport_is_422(stack: Stack) -> None:
    _, client = new_workspace(stack)
    response = client.post(
        "/admin/models/download", json={"model_id": TINY_LLAMA, "transport": "ftp"}
    )
    assert response.status_code == 422
    assert "transport" in response.json()["detail"]


@pytest.mark.parametrize(
    "model_id",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a/b/c",
        "org/..",
        "..",
        "org/.hidden",
        "org\\name",
        "a//b",
        "",
    ],
)
def test_model_ids_that_could_escape_the_models_dir_are_rejected(
    stack: Stack, model_id: str
) -> None:
    _, client = new_workspace(stack)
    response = client.post("/admin/models/download", json={"model_id": model_id})
    assert response.status_code == 422, response.text
    assert "not valid" in response.json()["detail"]
    entry = {
        "model_id": model_id,
        "display_name": "x",
        "hub_repo_id": "org/x",
        "modality": "text",
        "task": "fast_text",
        "default_engine": "transformers",
        "approx_size_bytes": 1,
        "license": "x",
    }
    assert client.post("/admin/models", json=entry).status_code == 422


def test_gated_model_without_token_fails_with_what_to_do(stack: Stack) -> None:
    _, client = new_workspace(stack, "gated")
    download(client, GATED_REPO)
    view = wait_status(stack, client, GATED_REPO, {"installed", "failed"})
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "gated_no_token"
    assert "STUDIO_HF_TOKEN" in view["failure"]["reason"]


def test_missing_repo_fails_with_the_repo_named(stack: Stack) -> None:
    _, client = new_workspace(stack, "missing")
    download(client, "studio-ai-test/missing")
    view = wait_status(stack, client, "studio-ai-test/missing", {"installed", "failed"})
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "repo_not_found"
    assert "studio-ai-test/no-such-repo" in view["failure"]["reason"]


def test_checksum_mismatch_fails_and_a_retry_after_the_fix_installs(stack: Stack) -> None:
    _, client = new_workspace(stack, "checksum")
    model_id = "tests-checksum/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    stack.hub.configure(corrupt={(TINY_LLAMA, "model.safetensors")})
    try:
        download(client, model_id)
        view = wait_status(stack, client, model_id, {"installed", "failed"})
    finally:
        stack.hub.configure(corrupt=set())
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "checksum_mismatch"
    assert "model.safetensors" in view["failure"]["reason"]
    download(client, model_id)
    assert wait_status(stack, client, model_id, {"installed", "failed"})["status"] == "installed"


def test_unreachable_mirror_fails_as_retryable(stack: Stack) -> None:
    _, client = new_workspace(stack, "unreachable")
    model_id = "tests-unreachable/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    stack.mirror.stop()
    try:
        download(client, model_id, "mirror")
        view = wait_status(stack, client, model_id, {"installed", "failed"})
    finally:
        stack.mirror.start()
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "source_unreachable"
    assert view["failure"]["retryable"] is True
    assert stack.env["STUDIO_MIRROR_ENDPOINT"] in view["failure"]["reason"]


def test_keys_roles_and_workspaces(stack: Stack) -> None:
    workspace, admin = new_workspace(stack, "owner")
    add_private_model(admin, "owner-private/tiny-llama", TINY_LLAMA)
    member = stack.client(stack.create_key(workspace, "member-1", "member"))
    _, other = new_workspace(stack, "other")

    assert stack.client(None).get("/admin/models").status_code == 401
    assert stack.client("sk-studio-not-a-key").get("/admin/models").status_code == 401
    forbidden = member.get("/admin/models")
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]
    assert member.post("/admin/models/download", json={"model_id": TINY_LLAMA}).status_code == 403

    other_ids = {m["model"]["model_id"] for m in other.get("/admin/models").json()["models"]}
    assert "owner-private/tiny-llama" not in other_ids
    assert other.get("/admin/models/owner-private/tiny-llama").status_code == 404
    assert (
        other.post(
            "/admin/models/download", json={"model_id": "owner-private/tiny-llama"}
        ).status_code
        == 404
    )

    download(admin, TINY_LLAMA)
    wait_status(stack, admin, TINY_LLAMA, {"installed"})
    assert model(other, TINY_LLAMA)["status"] == "available"


def test_cancel_stops_a_download_in_progress(stack: Stack) -> None:
    _, client = new_workspace(stack, "cancel")
    model_id = "tests-cancel/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    assert client.delete(f"/admin/models/{model_id}/download").status_code == 409
    stack.hub.configure(bytes_per_second=20_000)
    try:
        download(client, model_id)
        wait_status(stack, client, model_id, {"downloading"})
        response = client.delete(f"/admin/models/{model_id}/download")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelling"
        view = wait_status(
            stack, client, model_id, {"available", "installed", "failed"}, timeout=30
        )
    finally:
        stack.hub.configure(bytes_per_second=None)
    assert view["status"] == "available"


def test_a_repo_the_hub_gates_fails_even_when_the_catalog_says_it_is_open(stack: Stack) -> None:
    _, client = new_workspace(stack, "hub-gated")
    model_id = "tests-hubgated/tiny-llama"
    add_private_model(client, model_id, GATED_REPO, gated=False)
    download(client, model_id)
    view = wait_status(stack, client, model_id, {"installed", "failed"})
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "gated_no_token"
    assert view["failure"]["retryable"] is False
