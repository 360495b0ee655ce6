"""Jobs run on the requested model, or fall back with the reason recorded."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.fallback import EXTRACTIVE_MODEL_ID, resolve_model
from studio_ai.domain.model_installation import ModelInstallation
from studio_ai.schemas.models import (
    CatalogEntry,
    EngineKind,
    Modality,
    ModelStatus,
    ModelTask,
    RuntimeConfig,
)

LLAMA_1B, LLAMA_3B, MEDGEMMA = (
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "google/medgemma-4b-it",
)


def entry(model_id: str, task: ModelTask) -> CatalogEntry:
    modality = Modality.MULTIMODAL if task is ModelTask.IMAGE_TEXT else Modality.TEXT
    return CatalogEntry(
        model_id=model_id,
        display_name=model_id,
        hub_repo_id=model_id,
        modality=modality,
        task=task,
        default_engine=EngineKind.VLLM,
        approx_size_bytes=1,
        license="x",
    )


CATALOG = [
    entry(LLAMA_1B, ModelTask.FAST_TEXT),
    entry(LLAMA_3B, ModelTask.FAST_TEXT),
    entry(MEDGEMMA, ModelTask.IMAGE_TEXT),
]


def installed(model_id: str, pool: str) -> ModelInstallation:
    return ModelInstallation(
        workspace_id="ws",
        model_id=model_id,
        status=ModelStatus.INSTALLED,
        runtime=RuntimeConfig(engine=EngineKind.VLLM, endpoint_url="http://x", pool=pool),
    )


def test_the_requested_model_runs_when_installed_with_a_live_pool() -> None:
    res = resolve_model(
        LLAMA_3B,
        ModelTask.FAST_TEXT,
        catalog=CATALOG,
        installations={LLAMA_3B: installed(LLAMA_3B, "llama-3b")},
        live_pools={"llama-3b"},
    )
    assert (res.resolved_model_id, res.pool, res.fell_back) == (LLAMA_3B, "llama-3b", False)


def test_a_model_without_live_workers_falls_back_to_the_default_with_the_reason() -> None:
    res = resolve_model(
        LLAMA_3B,
        ModelTask.FAST_TEXT,
        catalog=CATALOG,
        installations={
            LLAMA_3B: installed(LLAMA_3B, "llama-3b"),
            LLAMA_1B: installed(LLAMA_1B, "llama-1b"),
        },
        live_pools={"llama-1b"},
        default_model_id=LLAMA_1B,
    )
    assert res.resolved_model_id == LLAMA_1B
    assert res.fallback_reason is not None
    assert "no live worker" in res.fallback_reason and "default" in res.fallback_reason


def test_a_text_job_with_nothing_installed_uses_the_extractive_engine_and_says_so() -> None:
    res = resolve_model(
        LLAMA_1B, ModelTask.FAST_TEXT, catalog=CATALOG, installations={}, live_pools=set()
    )
    assert res.resolved_model_id == EXTRACTIVE_MODEL_ID
    assert res.fallback_reason and "extractive" in res.fallback_reason


def test_an_image_job_with_nothing_installed_is_a_conflict_naming_what_to_install() -> None:
    with pytest.raises(Conflict, match="google/medgemma-4b-it"):
        resolve_model(
            MEDGEMMA, ModelTask.IMAGE_TEXT, catalog=CATALOG, installations={}, live_pools=set()
        )


def test_a_text_model_asked_for_an_image_job_names_the_models_that_fit() -> None:
    with pytest.raises(InvalidInput, match="google/medgemma-4b-it"):
        resolve_model(
            LLAMA_1B, ModelTask.IMAGE_TEXT, catalog=CATALOG, installations={}, live_pools=set()
        )
