"""The OpenAI-compatible engine against a real server: `transformers serve` on the tiny Llama."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from studio_ai.adapters.engines.base import GenerationRequest, GenerationResult
from studio_ai.adapters.engines.openai_compatible import OpenAICompatibleEngine
from tests.integration.test_inference_jobs import install, submit, wait_job
from tests.integration.test_inference_resilience import wait_live
from tests.support.flows import add_private_model, new_workspace
from tests.support.stack import TINY_LLAMA, Stack, free_port, wait_until


@pytest.fixture(scope="module")
def served_tiny_llama(
    tiny_repos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    model = str(tiny_repos_dir / TINY_LLAMA)
    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("transformers")),
            "serve",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert proc.poll() is None, "transformers serve exited; see its log"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=90, what="transformers serve to answer /health")
        yield f"http://127.0.0.1:{port}", model
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_streamed_generation_from_a_real_server_reports_usage(
    served_tiny_llama: tuple[str, str],
) -> None:
    url, model = served_tiny_llama
    tokens: list[str] = []

    async def on_token(token: str) -> None:
        tokens.append(token)

    async def run() -> list[GenerationResult]:
        engine = OpenAICompatibleEngine(url, model=model)
        try:
            request = GenerationRequest(
                messages=[{"role": "user", "content": "Summarise: the trial met its endpoint."}],
                max_tokens=6,
            )
            first = await engine.generate(request, on_token=on_token)
            together = await asyncio.gather(*(engine.generate(request) for _ in range(4)))
            return [first, *together]
        finally:
            await engine.aclose()

    results = asyncio.run(run())
    first = results[0]
    assert first.prompt_tokens > 0
    assert 0 < first.completion_tokens <= 6
    assert "".join(tokens) == first.text
    assert first.first_token_s is not None
    assert all(r.completion_tokens > 0 for r in results[1:])


def test_a_job_runs_on_a_real_server_through_the_vllm_engine(
    stack: Stack, served_tiny_llama: tuple[str, str]
) -> None:
    url, served_path = served_tiny_llama
    suffix = uuid.uuid4().hex[:6]
    _, client = new_workspace(stack, "served")
    model_id = f"served-{suffix}/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    install(stack, client, model_id)
    pool = f"served-{suffix}"
    response = client.put(
        f"/admin/models/{model_id}/runtime",
        json={"engine": "vllm", "endpoint_url": url, "pool": pool, "served_model": served_path},
    )
    assert response.status_code == 200, response.text
    stack.start_inference(f"inference-{pool}", (pool,))
    try:
        wait_live(client, model_id)
        accepted = submit(
            client,
            model_id=model_id,
            prompt="Summarise: the trial met its endpoint.",
            task="summary",
            max_tokens=6,
        )
        assert accepted["engine"] == "vllm" and accepted["fallback_reason"] is None
        job = wait_job(client, accepted["job_id"], timeout=120)
    finally:
        stack.kill(f"inference-{pool}")
    assert job["status"] == "completed", job
    assert job["engine"] == "vllm" and job["resolved_model_id"] == model_id
    assert job["usage"]["prompt_tokens"] > 0
    assert 0 < job["usage"]["completion_tokens"] <= 6
    assert job["timings"]["first_token_at"] is not None
