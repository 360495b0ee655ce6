"""An admin installs models: gateway -> Kafka -> downloader -> projector -> GET /admin/models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, snapshot_download

from studio_ai.domain.model_ids import model_dir_name
from tests.support.flows import (
    add_private_model,
    download,
    new_workspace,
    read_topic,
    wait_status,
)
from tests.support.stack import TINY_GEMMA, TINY_LLAMA, Stack


def _progress_events(download_id: str) -> list[dict[str, Any]]:
    return [
        body
        for _, _, body in read_topic("models.download-progressed.v1")
        if body.get("payload", {}).get("download_id") == download_id
    ]


@pytest.mark.parametrize("transport", ["hf_api", "hf_cli", "mirror", "local"])
def test_admin_installs_a_model_with_each_transport(stack: Stack, transport: str) -> None:
    _, client = new_workspace(stack, f"install-{transport.replace('_', '-')}")
    model_id = f"tests-{transport.replace('_', '-')}/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    if transport == "local":
        snapshot_download(
            TINY_LLAMA,
            endpoint=stack.hub.url,
            local_dir=Path(stack.env["STUDIO_STAGING_DIR"]) / model_dir_name(model_id),
        )

    accepted = download(client, model_id, transport)
    assert accepted["status"] == "downloading"
    assert accepted["python_client_command"].startswith(f"studio-ai models download {model_id} ")
    assert f"--transport {transport}" in accepted["python_client_command"]

    view = wait_status(stack, client, model_id, {"installed", "failed"})
    assert view["status"] == "installed", view
    expected_sha = HfApi(endpoint=stack.hub.url).model_info(TINY_LLAMA).sha
    assert view["installation"]["revision_sha"] == expected_sha
    assert view["installation"]["verified_files"] >= 1
    assert view["runtime"]["engine"] == "transformers"

    progress = _progress_events(accepted["download_id"])
    assert progress, "no models.download-progressed.v1 event for the download"
    assert progress[-1]["payload"]["progress"]["percent"] == 100.0

    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_path = view["installation"]["local_path"]
    tokenizer = AutoTokenizer.from_pretrained(local_path)
    model = AutoModelForCausalLM.from_pretrained(local_path)
    inputs = tokenizer("hello", return_tensors="pt")
    assert (
        model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1]
        > inputs["input_ids"].shape[1]
    )


def test_installed_multimodal_model_loads_with_its_processor(stack: Stack) -> None:
    _, client = new_workspace(stack, "gemma")
    download(client, TINY_GEMMA)
    view = wait_status(stack, client, TINY_GEMMA, {"installed", "failed"})
    assert view["status"] == "installed", view

    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = view["installation"]["local_path"]
    assert AutoProcessor.from_pretrained(path) is not None
    assert (
        type(AutoModelForImageTextToText.from_pretrained(path)).__name__
        == "Gemma3ForConditionalGeneration"
    )


def test_second_request_while_installed_is_refused_with_the_status(stack: Stack) -> None:
    _, client = new_workspace(stack, "twice")
    download(client, TINY_LLAMA)
    again = client.post("/admin/models/download", json={"model_id": TINY_LLAMA})
    assert again.status_code == 409
    assert "already" in again.json()["detail"]
    wait_status(stack, client, TINY_LLAMA, {"installed"})
    third = client.post("/admin/models/download", json={"model_id": TINY_LLAMA})
    assert third.status_code == 409
    assert "already installed" in third.json()["detail"]


def test_catalog_lists_shipped_models_with_metadata(stack: Stack) -> None:
    _, client = new_workspace(stack, "catalog")
    models = {m["model"]["model_id"]: m for m in client.get("/admin/models").json()["models"]}
    for model_id, task in (
        ("meta-llama/Llama-3.2-1B-Instruct", "fast_text"),
        ("meta-llama/Llama-3.2-3B-Instruct", "fast_text"),
        ("google/medgemma-4b-it", "image_text"),
    ):
        assert models[model_id]["status"] == "available"
        assert models[model_id]["model"]["task"] == task
        assert models[model_id]["model"]["gated"] is True
        assert models[model_id]["model"]["license"]


def test_runtime_of_an_installed_model_can_be_set(stack: Stack) -> None:
    _, client = new_workspace(stack, "runtime")
    not_yet = client.put(
        f"/admin/models/{TINY_LLAMA}/runtime",
        json={"engine": "vllm", "endpoint_url": "http://vllm:8000"},
    )
    assert not_yet.status_code == 409
    download(client, TINY_LLAMA)
    wait_status(stack, client, TINY_LLAMA, {"installed"})
    missing_url = client.put(f"/admin/models/{TINY_LLAMA}/runtime", json={"engine": "tgi"})
    assert missing_url.status_code == 422
    assert "endpoint_url" in missing_url.json()["detail"]
    bad_pool = client.put(
        f"/admin/models/{TINY_LLAMA}/runtime", json={"engine": "transformers", "pool": "../x"}
    )
    assert bad_pool.status_code == 422
    done = client.put(
        f"/admin/models/{TINY_LLAMA}/runtime",
        json={"engine": "tgi", "endpoint_url": "http://tgi-llama:8080", "pool": "llama-small"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["runtime"] == {
        "engine": "tgi",
        "endpoint_url": "http://tgi-llama:8080",
        "pool": "llama-small",
        "served_model": None,
    }
    assert client.get(f"/admin/models/{TINY_LLAMA}").json()["runtime"]["pool"] == "llama-small"


def _events_with_correlation(topic: str, correlation_id: str) -> list[dict[str, Any]]:
    return [
        {**body, "_key": key}
        for key, headers, body in read_topic(topic)
        if headers.get("correlation_id") == correlation_id
    ]


def test_one_request_is_one_chain_of_events_keyed_by_model(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "chain")
    correlation_id = f"req-{workspace}"
    response = client.post(
        "/admin/models/download",
        json={"model_id": TINY_LLAMA},
        headers={"X-Correlation-ID": correlation_id},
    )
    assert response.status_code == 202
    assert response.headers["X-Correlation-ID"] == correlation_id
    wait_status(stack, client, TINY_LLAMA, {"installed"})

    (requested,) = _events_with_correlation("models.download-requested.v1", correlation_id)
    (installed,) = _events_with_correlation("models.installed.v1", correlation_id)
    assert requested["_key"] == installed["_key"] == TINY_LLAMA.encode()
    assert requested["workspace_id"] == installed["workspace_id"] == workspace
    assert installed["causation_id"] == requested["event_id"]
