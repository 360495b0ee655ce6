"""In-process transformers engine: concurrent requests are batched, never run one at a time.

Requests wait in a queue; a single batching loop takes up to `max_batch` of them (waiting at
most `batch_wait_s` for more to arrive), renders each with the model's chat template (and, for
image + text models such as Gemma 3 / MedGemma, its processor), pads them on the left and runs
one `generate` call in a worker thread. Text models and image + text models load from the
installed folder (`local_path`); nothing is fetched.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio_ai.adapters.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    TokenCallback,
)

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future[GenerationResult]
    queued_at: float = field(default_factory=time.monotonic)


class TransformersEngine:
    def __init__(
        self,
        local_path: Path,
        *,
        max_batch: int = 16,
        batch_wait_s: float = 0.02,
        device: str | None = None,
    ) -> None:
        self._path = Path(local_path)
        self._max_batch = max_batch
        self._batch_wait_s = batch_wait_s
        self._device = device
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._model: Any = None
        self._processor: Any = None
        self._multimodal = (self._path / "preprocessor_config.json").exists() or (
            self._path / "processor_config.json"
        ).exists()
        self.batches_run = 0

    async def start(self) -> None:
        if self._loop_task is None:
            await asyncio.to_thread(self._load)
            self._loop_task = asyncio.create_task(self._batching_loop())

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None

    def _load(self) -> None:
        import torch
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        if self._multimodal:
            self._processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                self._path, padding_side="left"
            )
            model_cls: Any = AutoModelForImageTextToText
        else:
            self._processor = AutoTokenizer.from_pretrained(self._path, padding_side="left")
            model_cls = AutoModelForCausalLM
        self._model = model_cls.from_pretrained(self._path, dtype=dtype).to(device).eval()
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        _check_image_urls(request.messages)  # one bad request must not fail a whole batch
        if self._loop_task is None:
            await self.start()
        future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        result = await future
        if on_token is not None and result.text:
            # A padded batch yields its tokens at the end; the caller still gets them in order.
            await on_token(result.text)
        return result

    async def _batching_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self._batch_wait_s
            while len(batch) < self._max_batch:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            live = [p for p in batch if not p.future.done()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self._run_batch, [p.request for p in live])
            except Exception as exc:  # the whole batch fails together; each caller is told why
                error = EngineError(
                    "engine_error",
                    f"in-process generation failed: {type(exc).__name__}: {exc}",
                    retryable=False,
                )
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.batches_run += 1
            for pending, result in zip(live, results, strict=True):
                result.total_s = time.monotonic() - pending.queued_at
                if not pending.future.done():
                    pending.future.set_result(result)

    def _run_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        started = time.monotonic()
        processor, model = self._processor, self._model
        texts = [
            processor.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        if self._multimodal:
            images = [_images(r.messages) for r in requests]
            inputs = processor(
                text=texts,
                images=images if any(images) else None,
                return_tensors="pt",
                padding=True,
            )
        else:
            inputs = processor(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(model.device)
        max_new = max(r.max_tokens for r in requests)
        sample = any((r.temperature or 0) > 0 for r in requests)
        temperature = max((r.temperature or 0) for r in requests)
        tokenizer = getattr(processor, "tokenizer", processor)
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new,
                do_sample=sample,
                temperature=temperature if sample else None,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_len = inputs["input_ids"].shape[1]
        first_token_s = time.monotonic() - started
        results = []
        for row, request in enumerate(requests):
            new_tokens = output[row, prompt_len:][: request.max_tokens]
            ids = [int(t) for t in new_tokens if int(t) != tokenizer.pad_token_id]
            finish = "length" if len(new_tokens) >= request.max_tokens else "stop"
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
                finish = "stop"
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            results.append(
                GenerationResult(
                    text=tokenizer.decode(ids, skip_special_tokens=True),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=len(ids),
                    finish_reason=finish,
                    first_token_s=first_token_s,
                )
            )
        return results


def _image_urls(messages: list[dict[str, Any]]) -> list[str]:
    urls = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            urls += [
                str((part.get("image_url") or {}).get("url", ""))
                for part in content
                if part.get("type") == "image_url"
            ]
    return urls


def _check_image_urls(messages: list[dict[str, Any]]) -> None:
    for url in _image_urls(messages):
        if not url.startswith("data:") or ";base64," not in url:
            raise EngineError(
                "invalid_image", "images must be data: URLs; no URL is fetched", retryable=False
            )


def _images(messages: list[dict[str, Any]]) -> list[Any]:
    """PIL images of the data: URLs in the messages' image_url parts (no URL is ever fetched)."""
    from PIL import Image

    found = []
    for url in _image_urls(messages):
        raw = base64.b64decode(url.split(";base64,", 1)[1])
        found.append(Image.open(io.BytesIO(raw)).convert("RGB"))
    return found
