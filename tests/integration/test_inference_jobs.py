"""Inference jobs end to end: gateway -> ai.inference-requested.<pool>.v1 -> inference worker
-> ai.inference-* -> job projector -> GET /ai/jobs, with the real broker and store."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image

from tests.support.flows import download, new_workspace, read_topic, wait_status
from tests.support.stack import TINY_GEMMA, TINY_LLAMA, Stack, wait_until

ABSTRACT = (
    "Semaglutide reduced body weight by 14.9 percent over 68 weeks in adults with obesity. "
    "Gastrointestinal events were the most common adverse effects and were mostly transient. "
    "The trial enrolled 1961 participants at 129 sites in 16 countries. "
    "Funding was provided by Novo Nordisk."
)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        response = client.get(f"/ai/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] in {"completed", "failed", "cancelled"} else None

    return wait_until(ended, timeout=timeout, what=f"job {job_id} to end")


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/ai/generate-text", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def note(client: httpx.Client, text: str) -> str:
    response = client.post("/notes", json={"title": "abstract", "text": text})
    assert response.status_code == 201, response.text
    return str(response.json()["ref"])


def png_bytes(color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def install(stack: Stack, client: httpx.Client, model_id: str) -> dict[str, Any]:
    download(client, model_id, "mirror")
    view = wait_status(stack, client, model_id, {"installed", "failed"})
    assert view["status"] == "installed", view
    return view


def test_extractive_summary_cites_its_context_and_reports_latency_and_cost(stack: Stack) -> None:
    _, client = new_workspace(stack, "extractive")
    ref = note(client, ABSTRACT)
    accepted = submit(
        client,
        model_id="studio-ai/extractive",
        prompt="Summarise the trial.",
        task="summary",
        context_refs=[ref],
    )
    assert accepted["status"] == "queued"
    assert accepted["resolved_model_id"] == "studio-ai/extractive"
    assert accepted["fallback_reason"] is None

    job = wait_job(client, accepted["job_id"])
    assert job["status"] == "completed", job
    assert job["engine"] == "extractive"
    assert "Semaglutide reduced body weight" in job["result"]["text"]
    assert f"[{ref}]" in job["result"]["text"]
    assert job["usage"]["completion_tokens"] > 0
    timings = job["timings"]
    assert timings["queued_at"] <= timings["started_at"] <= timings["finished_at"]

    metrics = [
        body["payload"]
        for _, _, body in read_topic("analytics.inference-metrics.v1")
        if body.get("payload", {}).get("job_id") == accepted["job_id"]
    ]
    assert metrics and metrics[0]["model_id"] == "studio-ai/extractive"
    assert metrics[0]["cost_basis"] == "free" and metrics[0]["cost"] == 0
    assert metrics[0]["total_ms"] > 0

    def summary() -> dict[str, Any] | None:
        body = client.get("/ai/metrics/models", params={"window": "1h"}).json()
        return next((m for m in body["models"] if m["model_id"] == "studio-ai/extractive"), None)

    stats = wait_until(summary, timeout=20, what="the metrics summary to list the job")
    assert stats["completed"] == 1 and stats["p50_ms"] > 0


def test_a_missing_model_falls_back_then_the_installed_model_runs(stack: Stack) -> None:
    _, client = new_workspace(stack, "fallback")
    first = submit(client, model_id=TINY_LLAMA, prompt="Semaglutide reduced weight. It works.")
    assert first["resolved_model_id"] == "studio-ai/extractive"
    assert "not installed" in first["fallback_reason"]
    job = wait_job(client, first["job_id"])
    assert job["status"] == "completed"
    assert job["requested_model_id"] == TINY_LLAMA
    assert job["fallback_reason"] == first["fallback_reason"]

    view = install(stack, client, TINY_LLAMA)
    selector = client.get("/ai/models", params={"task": "fast_text"}).json()
    tiny = next(m for m in selector["models"] if m["model_id"] == TINY_LLAMA)
    assert tiny["availability"] == "installed" and tiny["live"] is True

    second = submit(client, model_id=TINY_LLAMA, prompt="Hello there", max_tokens=8)
    assert second["resolved_model_id"] == TINY_LLAMA and second["fallback_reason"] is None
    assert second["engine"] == "transformers"
    job = wait_job(client, second["job_id"], timeout=120)
    assert job["status"] == "completed", job
    assert job["engine"] == "transformers"
    assert job["model_revision"] == view["installation"]["revision_sha"]
    assert 0 < job["usage"]["completion_tokens"] <= 8
    assert job["usage"]["prompt_tokens"] > 0


def test_multimodal_job_on_tiny_gemma_deletes_its_unconsented_image(stack: Stack) -> None:
    _, client = new_workspace(stack, "multimodal")
    install(stack, client, TINY_GEMMA)
    upload = client.post(
        "/images",
        content=png_bytes(),
        headers={"Content-Type": "image/png"},
        params={"consent": "false"},
    )
    assert upload.status_code == 201, upload.text
    image_id = upload.json()["image_id"]

    response = client.post(
        "/ai/generate-multimodal",
        json={
            "model_id": TINY_GEMMA,
            "prompt": "Describe the image.",
            "image_refs": [image_id],
            "max_tokens": 6,
        },
    )
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"], timeout=120)
    assert job["status"] == "completed", job
    assert job["image_refs"] == [image_id]
    assert job["usage"]["prompt_tokens"] > 0

    wait_until(
        lambda: client.get(f"/images/{image_id}").status_code == 410,
        timeout=20,
        what="the unconsented image to be deleted once its job ended",
    )


def test_bad_input_is_refused_with_a_reason_and_queues_nothing(stack: Stack) -> None:
    _, client = new_workspace(stack, "bad-input")
    _, other = new_workspace(stack, "bad-input-other")
    foreign = other.post(
        "/images",
        content=png_bytes(),
        headers={"Content-Type": "image/png"},
        params={"consent": "true", "retention_days": "1"},
    ).json()["image_id"]

    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("/ai/generate-text", {"model_id": TINY_LLAMA, "prompt": "   "}, 422, "prompt is empty"),
        ("/ai/generate-text", {"model_id": TINY_LLAMA, "prompt": "x" * 40_000}, 422, "limit"),
        ("/ai/generate-text", {"model_id": "nobody/nothing", "prompt": "hi"}, 404, "catalog"),
        ("/ai/generate-text", {"model_id": TINY_GEMMA, "prompt": "hi"}, 422, TINY_LLAMA),
        (
            "/ai/generate-multimodal",
            {"model_id": TINY_LLAMA, "prompt": "hi", "image_refs": [foreign]},
            422,
            TINY_GEMMA,
        ),
        (
            "/ai/generate-multimodal",
            {"model_id": TINY_GEMMA, "prompt": "hi", "image_refs": [foreign]},
            404,
            "no such image",
        ),
        (
            "/ai/generate-text",
            {"model_id": TINY_LLAMA, "prompt": "q", "task": "qa"},
            422,
            "context",
        ),
        (
            "/ai/generate-text",
            {"model_id": TINY_LLAMA, "prompt": "hi", "context_refs": ["file:///etc/passwd"]},
            422,
            "job:<job_id>",
        ),
    ]
    for path, body, status, words in cases:
        response = client.post(path, json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], (body, response.json())
    assert client.get("/ai/jobs").json()["jobs"] == []
    assert client.get(f"/images/{foreign}").status_code == 404
