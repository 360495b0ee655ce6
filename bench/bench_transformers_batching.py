"""Batched vs one-at-a-time generation in the in-process transformers engine.

Creates the tiny Llama (random weights), then generates the same 16 prompts twice on one
engine: one request at a time, then all 16 at once (the engine batches them). Prints tokens/s
of both and the ratio (the inference issue's target is >= 4x). CPU, or CUDA when present.

    .venv/bin/python bench/bench_transformers_batching.py [--prompts 16] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from studio_ai.adapters.engines.base import GenerationRequest
from studio_ai.adapters.engines.transformers_local import TransformersEngine
from studio_ai.devkit.tiny_models import create_tiny_llama


async def measure(path: Path, prompts: int, max_tokens: int) -> tuple[float, float]:
    engine = TransformersEngine(path, max_batch=prompts, batch_wait_s=0.05)
    requests = [
        GenerationRequest(
            messages=[{"role": "user", "content": f"Summarise finding {n} of the trial."}],
            max_tokens=max_tokens,
        )
        for n in range(prompts)
    ]
    try:
        await engine.generate(requests[0])  # load and warm up
        started = time.perf_counter()
        sequential = [await engine.generate(r) for r in requests]
        sequential_s = time.perf_counter() - started
        started = time.perf_counter()
        batched = await asyncio.gather(*(engine.generate(r) for r in requests))
        batched_s = time.perf_counter() - started
    finally:
        await engine.aclose()
    seq_tokens = sum(r.completion_tokens for r in sequential)
    batch_tokens = sum(r.completion_tokens for r in batched)
    return seq_tokens / sequential_s, batch_tokens / batched_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = create_tiny_llama(Path(tmp) / "tiny-llama")
        one, batch = asyncio.run(measure(path, args.prompts, args.max_tokens))
    print(f"tiny Llama, {args.prompts} prompts x {args.max_tokens} new tokens")
    print(f"  one at a time   {one:10.1f} tokens/s")
    print(f"  batched         {batch:10.1f} tokens/s")
    print(f"  ratio batched / one at a time: {batch / one:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
