"""The in-process transformers engine on a GPU, against the memory-bandwidth ceiling.

Builds a model with the Llama-3.2-1B architecture (random weights, bf16; the tokenizer is the
tiny byte-level BPE of `studio_ai.devkit.tiny_models`, whose few hundred ids sit inside the
model's 128,256) in a temporary folder and runs `TransformersEngine` on it: tokens/s with one
request at a time (`--sequential` requests one after another) and with `--concurrency`
requests at once (one padded batch), `--max-tokens` new tokens each.

Ceiling: a decode step reads every weight once (`weight_bytes` = parameters x bytes per
parameter; the tied embedding is read once, as the output projection), so one sequence
decodes at most `bandwidth / weight_bytes` tokens/s and a batch of B at B times that, until
compute-bound (`tflops` / (2 x parameters)). KV-cache reads and prefill are left out: the
ceiling is optimistic, and the fraction of it reached is the figure to watch.

Only where CUDA is present; elsewhere it prints "skipped: CUDA not available" and exits 0.
`--smoke` runs the same code path on the CPU with a 2-layer, hidden-64 model and 8 concurrent
requests (its figures mean nothing; it checks the script).

    .venv/bin/python bench/bench_gpu_engine.py [--bandwidth-gbs 4800] [--json OUT]
    .venv/bin/python bench/bench_gpu_engine.py --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from studio_ai.adapters.engines.base import GenerationRequest, GenerationResult
from studio_ai.adapters.engines.transformers_local import TransformersEngine
from studio_ai.devkit.tiny_models import create_tiny_llama

# Peak memory bandwidth (GB/s) and dense bf16 tensor TFLOP/s by device name; first match wins.
_GPU_SPECS: list[tuple[str, float, float]] = [
    ("H200", 4800, 989),
    ("H100 NVL", 3900, 835),
    ("H100 PCIe", 2000, 756),
    ("H100", 3350, 989),  # SXM
    ("A100-SXM4-80GB", 2039, 312),
    ("A100 80GB", 2039, 312),
    ("A100", 1555, 312),
    ("L40S", 864, 362),
    ("L40", 864, 181),
    ("L4", 300, 121),
]
_SMOKE_BANDWIDTH_GBS = 20.0  # a nominal CPU figure, only so that --smoke fills the table

# Llama-3.2-1B's published config.json (meta-llama/Llama-3.2-1B), except the token ids.
LLAMA_3_2_1B: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    },
}
SMOKE: dict[str, Any] = {
    **LLAMA_3_2_1B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


@dataclass
class Row:
    batch: int
    requests: int
    completion_tokens: int
    requested_tokens: int
    seconds: float
    tokens_per_s: float
    ceiling_tokens_per_s: float
    fraction_of_ceiling: float


def build_model(folder: Path, architecture: dict[str, Any]) -> int:
    """Write tokenizer and random bf16 weights into `folder`; returns the parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tiny = create_tiny_llama(folder.parent / "tiny-llama")  # only its tokenizer is used
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        **architecture,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="bfloat16",
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # fast random init
        model: Any = LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    parameters = int(sum(p.numel() for p in model.parameters()))  # the tied matrix counts once
    model.save_pretrained(folder, safe_serialization=True)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return parameters


def _requests(count: int, max_tokens: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            messages=[{"role": "user", "content": f"Summarise finding {n} of the trial."}],
            max_tokens=max_tokens,
        )
        for n in range(count)
    ]


async def _timed(
    engine: TransformersEngine, requests: list[GenerationRequest], *, together: bool
) -> tuple[list[GenerationResult], float]:
    started = time.perf_counter()
    if together:
        results = list(await asyncio.gather(*(engine.generate(r) for r in requests)))
    else:
        results = [await engine.generate(r) for r in requests]
    return results, time.perf_counter() - started


async def measure(
    folder: Path, *, device: str | None, sequential: int, concurrency: int, max_tokens: int
) -> tuple[dict[int, tuple[list[GenerationResult], float]], int, int]:
    """{batch: (results, seconds)}, bytes per parameter as loaded, batches of the batched run."""
    engine = TransformersEngine(folder, max_batch=concurrency, device=device)
    try:
        await engine.generate(_requests(1, 8)[0])  # load, kernels and allocator warm
        await _timed(engine, _requests(concurrency, 8), together=True)
        model: Any = getattr(engine, "_model", None)
        bytes_per_parameter = next(model.parameters()).element_size() if model else 2
        one = await _timed(engine, _requests(sequential, max_tokens), together=False)
        before = engine.batches_run
        many = await _timed(engine, _requests(concurrency, max_tokens), together=True)
        batches = engine.batches_run - before
    finally:
        await engine.aclose()
    return {1: one, concurrency: many}, bytes_per_parameter, batches


def gpu_specs(name: str) -> tuple[float | None, float | None]:
    """(bandwidth GB/s, bf16 TFLOP/s) for a device name, or (None, None) when unknown."""
    for key, bandwidth, tflops in _GPU_SPECS:
        if key.lower() in name.lower():
            return bandwidth, tflops
    return None, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bandwidth-gbs", type=float, help="peak memory bandwidth, GB/s")
    parser.add_argument("--tflops", type=float, help="dense bf16 TFLOP/s (compute ceiling)")
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per request")
    parser.add_argument("--sequential", type=int, default=4, help="batch-1 requests, in turn")
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures here")
    parser.add_argument("--tmp-dir", type=Path, help="where the model is written (about 2.5 GB)")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if args.smoke:
        device, gpu, architecture = "cpu", "cpu (smoke)", SMOKE
        if args.concurrency == parser.get_default("concurrency"):
            args.concurrency = 8
        bandwidth, tflops = args.bandwidth_gbs or _SMOKE_BANDWIDTH_GBS, args.tflops
    elif not torch.cuda.is_available():
        print("skipped: CUDA not available")
        return 0
    else:
        device, gpu, architecture = "cuda", torch.cuda.get_device_name(0), LLAMA_3_2_1B
        known_bandwidth, known_tflops = gpu_specs(gpu)
        bandwidth = args.bandwidth_gbs or known_bandwidth
        tflops = args.tflops or known_tflops
        if bandwidth is None:
            parser.error(f"no bandwidth known for {gpu!r}: pass --bandwidth-gbs")

    with tempfile.TemporaryDirectory(prefix="bench-gpu-", dir=args.tmp_dir) as tmp:
        folder = Path(tmp) / "llama-3.2-1b-random"
        parameters = build_model(folder, architecture)
        runs, bytes_per_parameter, batches = asyncio.run(
            measure(
                folder,
                device=device,
                sequential=args.sequential,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
            )
        )

    weight_bytes = parameters * bytes_per_parameter
    per_sequence = bandwidth * 1e9 / weight_bytes
    compute_cap = tflops * 1e12 / (2 * parameters) if tflops else float("inf")
    rows = []
    for batch, (results, seconds) in runs.items():
        tokens = sum(r.completion_tokens for r in results)
        ceiling = min(batch * per_sequence, compute_cap)
        rows.append(
            Row(
                batch=batch,
                requests=len(results),
                completion_tokens=tokens,
                requested_tokens=len(results) * args.max_tokens,
                seconds=seconds,
                tokens_per_s=tokens / seconds,
                ceiling_tokens_per_s=ceiling,
                fraction_of_ceiling=tokens / seconds / ceiling,
            )
        )
    ratio = rows[1].tokens_per_s / rows[0].tokens_per_s

    print(f"{gpu}: {parameters / 1e9:.3f} B parameters, {weight_bytes / 1e9:.2f} GB of weights")
    print(f"bandwidth {bandwidth:g} GB/s, compute {tflops or '?'} TFLOP/s (bf16 dense)")
    print(f"{'batch':>5} {'tokens/s':>10} {'ceiling':>10} {'fraction':>9}  tokens (of asked)")
    for row in rows:
        print(
            f"{row.batch:>5} {row.tokens_per_s:>10.1f} {row.ceiling_tokens_per_s:>10.1f} "
            f"{row.fraction_of_ceiling:>9.3f}  {row.completion_tokens} ({row.requested_tokens})"
        )
    print(
        f"ratio batch {args.concurrency} / batch 1: {ratio:.1f}x "
        f"(the batched run took {batches} engine batch(es))"
    )
    if any(row.completion_tokens < row.requested_tokens for row in rows):
        print("some requests stopped early on eos (random weights); tokens/s counts what came")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": gpu,
                    "smoke": args.smoke,
                    "architecture": architecture,
                    "parameters": parameters,
                    "weight_bytes": weight_bytes,
                    "bandwidth_gbs": bandwidth,
                    "tflops": tflops,
                    "max_tokens": args.max_tokens,
                    "batches_in_batched_run": batches,
                    "rows": [asdict(row) for row in rows],
                    "ratio_batch_over_batch1": ratio,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
