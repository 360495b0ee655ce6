"""The in-process transformers engine on the tiny models: batching and multimodal input."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from studio_ai.adapters.engines.base import EngineError, GenerationRequest, GenerationResult
from studio_ai.adapters.engines.transformers_local import TransformersEngine


def _ask(text: str, max_tokens: int = 5) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], max_tokens=max_tokens)


def test_concurrent_requests_share_batches_and_match_one_at_a_time(tiny_repos_dir: Path) -> None:
    prompts = [f"Summarise finding number {n} of the trial." for n in range(8)]

    async def run() -> tuple[list[GenerationResult], list[GenerationResult], int]:
        engine = TransformersEngine(tiny_repos_dir / "studio-ai-test/tiny-llama", batch_wait_s=0.05)
        try:
            alone = [await engine.generate(_ask(p)) for p in prompts[:2]]
            batches_before = engine.batches_run
            together = await asyncio.gather(*(engine.generate(_ask(p)) for p in prompts))
            return alone, list(together), engine.batches_run - batches_before
        finally:
            await engine.aclose()

    alone, together, batches = asyncio.run(run())
    assert batches < len(prompts), "concurrent requests ran one at a time"
    assert [r.text for r in together[:2]] == [r.text for r in alone], (
        "greedy output must not depend on the batch a request lands in"
    )
    assert all(0 < r.completion_tokens <= 5 and r.prompt_tokens > 0 for r in together)


def _png_data_url() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 90)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_image_and_text_requests_run_on_the_gemma3_processor(tiny_repos_dir: Path) -> None:
    request = GenerationRequest(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _png_data_url()}},
                    {"type": "text", "text": "Describe the slide."},
                ],
            }
        ],
        max_tokens=4,
    )

    async def run() -> GenerationResult:
        engine = TransformersEngine(tiny_repos_dir / "studio-ai-test/tiny-gemma3")
        try:
            return await engine.generate(request)
        finally:
            await engine.aclose()

    result = asyncio.run(run())
    assert result.prompt_tokens > 4  # the image's soft tokens are part of the prompt
    assert 0 < result.completion_tokens <= 4


def test_remote_image_urls_are_refused(tiny_repos_dir: Path) -> None:
    request = GenerationRequest(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "http://example.org/x.png"}},
                    {"type": "text", "text": "Describe."},
                ],
            }
        ],
        max_tokens=2,
    )

    async def run() -> None:
        engine = TransformersEngine(tiny_repos_dir / "studio-ai-test/tiny-gemma3")
        try:
            await engine.generate(request)
        finally:
            await engine.aclose()

    with pytest.raises(EngineError, match="no URL is fetched") as refused:
        asyncio.run(run())
    assert refused.value.code == "invalid_image"
