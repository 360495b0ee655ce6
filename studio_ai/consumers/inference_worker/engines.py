"""The engines a worker runs, created once per target and kept for the process's life."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from studio_ai.adapters.engines.base import Engine, EngineError
from studio_ai.adapters.engines.extractive import ExtractiveEngine
from studio_ai.adapters.engines.openai_compatible import OpenAICompatibleEngine
from studio_ai.adapters.engines.transformers_local import TransformersEngine
from studio_ai.domain.endpoints import check_endpoint_url
from studio_ai.domain.errors import DomainError
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.inference import EngineName, EngineTarget

log = logging.getLogger(__name__)


class EngineCache:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engines: dict[tuple[str, str], Engine] = {}
        self._lock = asyncio.Lock()

    async def get(self, target: EngineTarget, model_id: str) -> Engine:
        key = _key(target, model_id)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        async with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = await self._create(target, model_id)
                self._engines[key] = engine
        return engine

    async def _create(self, target: EngineTarget, model_id: str) -> Engine:
        settings = self._settings
        if target.engine is EngineName.EXTRACTIVE:
            return ExtractiveEngine()
        if target.engine is EngineName.TRANSFORMERS:
            path = Path(target.local_path or "")
            if not target.local_path or not (path / "config.json").is_file():
                raise EngineError(
                    "model_files_missing",
                    f"model {model_id!r} has no files at {target.local_path!r} on this worker: "
                    "run the pool's worker where the models directory holds it, or install it "
                    "again",
                    retryable=False,
                )
            log.info("loading model in process", extra={"model_id": model_id, "path": str(path)})
            transformers_engine = TransformersEngine(
                path, max_batch=settings.transformers_max_batch
            )
            try:
                await transformers_engine.start()
            except Exception as exc:
                raise EngineError(
                    "model_load_failed",
                    f"model {model_id!r} could not be loaded from {path}: "
                    f"{type(exc).__name__}: {exc}",
                    retryable=False,
                ) from exc
            return transformers_engine
        if not target.endpoint_url:
            raise EngineError(
                "no_endpoint",
                f"model {model_id!r} runs on {target.engine.value} but has no endpoint_url: an "
                "admin sets it with PUT /admin/models/{id}/runtime",
                retryable=False,
            )
        try:
            check_endpoint_url(target.endpoint_url, settings.inference_endpoint_hosts)
        except DomainError as exc:
            raise EngineError("endpoint_not_allowed", exc.message, retryable=False) from exc
        # The deployment's token goes only to hosts an operator listed: an endpoint_url is set
        # by a workspace admin, who must not be able to collect it with a server of their own.
        api_key = settings.inference_api_key if settings.inference_endpoint_hosts else None
        return OpenAICompatibleEngine(
            target.endpoint_url,
            model=target.served_model or model_id,
            api_key=api_key.get_secret_value() if api_key else None,
            timeout_s=settings.inference_timeout_s,
        )

    async def aclose(self) -> None:
        for engine in self._engines.values():
            close = getattr(engine, "aclose", None)
            if close is not None:
                await close()
        self._engines.clear()


def _key(target: EngineTarget, model_id: str) -> tuple[str, str]:
    if target.engine is EngineName.EXTRACTIVE:
        return ("extractive", "")
    if target.engine is EngineName.TRANSFORMERS:
        return ("transformers", target.local_path or "")
    return ("openai", f"{target.endpoint_url}|{target.served_model or model_id}")
