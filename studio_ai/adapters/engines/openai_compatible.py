"""The OpenAI-compatible chat completions API that TGI (Messages API), vLLM, SGLang and
`transformers serve` share: streamed tokens, images as content parts, and errors mapped the way
TGI's own client did — overload and gateway errors are retryable, validation errors are not.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from studio_ai.adapters.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    TokenCallback,
)

RETRYABLE_STATUS = {408, 424, 429, 500, 502, 503, 504}


class OpenAICompatibleEngine:
    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._model = model
        self._base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def generate(
        self, request: GenerationRequest, *, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        started = time.monotonic()
        first_token_s: float | None = None
        parts: list[str] = []
        usage: dict[str, int] = {}
        finish_reason = "unknown"
        chunks = 0
        try:
            async with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _http_error(response, self._base_url)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise EngineError(
                            "engine_error",
                            f"the model server reported: {chunk['error']}",
                            retryable=True,
                        )
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        token = (choice.get("delta") or {}).get("content")
                        if token:
                            chunks += 1
                            if first_token_s is None:
                                first_token_s = time.monotonic() - started
                            parts.append(token)
                            if on_token is not None:
                                await on_token(token)
                        finish_reason = choice.get("finish_reason") or finish_reason
        except httpx.TimeoutException as exc:
            raise EngineError(
                "timeout",
                f"the model server at {self._base_url} timed out ({type(exc).__name__})",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise EngineError(
                "unreachable",
                f"the model server at {self._base_url} is unreachable "
                f"({type(exc).__name__}: {exc})",
                retryable=True,
            ) from exc
        except json.JSONDecodeError as exc:
            raise EngineError(
                "bad_response",
                f"the model server sent a chunk that is not JSON: {exc}",
                retryable=True,
            ) from exc
        return GenerationResult(
            text="".join(parts),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", chunks)),
            finish_reason=finish_reason,
            first_token_s=first_token_s,
            total_s=time.monotonic() - started,
        )


def _http_error(response: httpx.Response, base_url: str) -> EngineError:
    try:
        payload = response.json()
        detail = payload.get("error") or payload.get("message") or payload.get("detail") or payload
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        detail = str(detail)[:200]
    except ValueError:
        detail = "(its body is not JSON)"  # never echo a foreign body to callers
    status = response.status_code
    retryable = status in RETRYABLE_STATUS
    code = (
        "overloaded"
        if status in (429, 503)
        else ("server_error" if retryable else "invalid_request")
    )
    return EngineError(
        code,
        f"the model server at {base_url} answered HTTP {status}: {detail}",
        retryable=retryable,
    )
