"""Jobs run on the requested model, or fall back with the reason recorded."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.fallback import (
    BUILTIN_POOL,
    EXTRACTIVE_MODEL_ID,
    check_fits,
    resolve_model,
)
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


def test_asking_for_the_extractive_engine_for_a_text_job_runs_it_without_a_fallback() -> None:
    res = resolve_model(
        EXTRACTIVE_MODEL_ID,
        ModelTask.FAST_TEXT,
        catalog=CATALOG,
        installations={LLAMA_1B: installed(LLAMA_1B, "llama-1b")},
        live_pools={"llama-1b"},
        default_model_id=LLAMA_1B,
    )
    assert res.requested_model_id == EXTRACTIVE_MODEL_ID
    assert (res.resolved_model_id, res.pool) == (EXTRACTIVE_MODEL_ID, BUILTIN_POOL)
    assert res.fallback_reason is None and not res.fell_back


def test_the_extractive_engine_refuses_an_image_job_and_names_the_models_that_fit() -> None:
    with pytest.raises(InvalidInput, match="text only") as caught:
        resolve_model(
            EXTRACTIVE_MODEL_ID,
            ModelTask.IMAGE_TEXT,
            catalog=CATALOG,
            installations={MEDGEMMA: installed(MEDGEMMA, "medgemma")},
            live_pools={"medgemma"},
        )
    assert MEDGEMMA in caught.value.message
    assert LLAMA_1B not in caught.value.message


def test_check_fits_names_the_models_that_fit_a_wrong_modality_model() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_fits(MEDGEMMA, ModelTask.FAST_TEXT, CATALOG)
    message = caught.value.message
    assert MEDGEMMA in message
    assert LLAMA_1B in message and LLAMA_3B in message
    with pytest.raises(InvalidInput, match="google/medgemma-4b-it"):
        check_fits(LLAMA_3B, ModelTask.IMAGE_TEXT, CATALOG)


def test_check_fits_passes_models_that_fit_and_models_it_does_not_know() -> None:
    check_fits(LLAMA_1B, ModelTask.FAST_TEXT, CATALOG)
    check_fits(MEDGEMMA, ModelTask.IMAGE_TEXT, CATALOG)
    check_fits("someone/unknown-model", ModelTask.FAST_TEXT, CATALOG)
    check_fits("someone/unknown-model", ModelTask.IMAGE_TEXT, CATALOG)


def test_a_fallback_to_the_extractive_engine_runs_on_the_builtin_pool() -> None:
    res = resolve_model(
        LLAMA_3B,
        ModelTask.FAST_TEXT,
        catalog=CATALOG,
        installations={LLAMA_3B: installed(LLAMA_3B, "llama-3b")},
        live_pools=set(),
    )
    assert (res.resolved_model_id, res.pool) == (EXTRACTIVE_MODEL_ID, BUILTIN_POOL)
    assert res.fell_back
    assert res.fallback_reason and "no live worker" in res.fallback_reason


def test_an_unknown_model_for_a_text_job_falls_back_and_says_it_is_not_in_the_catalog() -> None:
    res = resolve_model(
        "someone/unknown-model",
        ModelTask.FAST_TEXT,
        catalog=CATALOG,
        installations={LLAMA_1B: installed(LLAMA_1B, "llama-1b")},
        live_pools={"llama-1b"},
    )
    assert (res.resolved_model_id, res.pool) == (LLAMA_1B, "llama-1b")
    assert res.fallback_reason and "not in the catalog" in res.fallback_reason
