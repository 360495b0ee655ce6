"""Which model a job runs on: the one asked for, or the workspace's default for the task.

A job asks for a model; it runs there when that model is installed for the workspace and its
worker pool has a live worker. Otherwise it falls back to the workspace's default installed
model of the same task and modality (then any installed one), and the reason is recorded on
the job. Text tasks have a last resort that needs no weights: the built-in extractive engine.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from studio_ai.domain.errors import Conflict, InvalidInput
from studio_ai.domain.model_installation import ModelInstallation
from studio_ai.schemas.models import CatalogEntry, Modality, ModelStatus, ModelTask

EXTRACTIVE_MODEL_ID = "studio-ai/extractive"
BUILTIN_POOL = "builtin"  # the pool whose workers run the extractive engine


@dataclass(frozen=True)
class Resolution:
    requested_model_id: str
    resolved_model_id: str
    pool: str
    fallback_reason: str | None

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None


def _usable(
    entry: CatalogEntry,
    installations: Mapping[str, ModelInstallation],
    live_pools: Collection[str],
) -> tuple[bool, str]:
    inst = installations.get(entry.model_id)
    if inst is None or inst.status is not ModelStatus.INSTALLED or inst.runtime is None:
        status = inst.status.value if inst else ModelStatus.AVAILABLE.value
        return False, f"model {entry.model_id!r} is not installed (status: {status})"
    if inst.runtime.pool not in live_pools:
        return False, f"pool {inst.runtime.pool!r} of model {entry.model_id!r} has no live worker"
    return True, ""


def check_fits(model_id: str, task: ModelTask, catalog: Sequence[CatalogEntry]) -> None:
    """Raise InvalidInput, naming the models that fit, when `model_id` does other work."""
    modality = Modality.MULTIMODAL if task is ModelTask.IMAGE_TEXT else Modality.TEXT
    requested = next((e for e in catalog if e.model_id == model_id), None)
    if requested is not None and (requested.task is not task or requested.modality is not modality):
        fitting = [e for e in catalog if e.task is task and e.modality is modality]
        names = ", ".join(e.model_id for e in fitting) or "none in the catalog"
        raise InvalidInput(
            f"model {model_id!r} does its {requested.task.value} work on "
            f"{requested.modality.value} input; a {task.value} job needs one of: {names}"
        )


def resolve_model(
    requested_model_id: str,
    task: ModelTask,
    *,
    catalog: Sequence[CatalogEntry],
    installations: Mapping[str, ModelInstallation],
    live_pools: Collection[str],
    default_model_id: str | None = None,
    allow_extractive: bool = True,
) -> Resolution:
    """The model a job of `task` runs on; raises InvalidInput or Conflict with what to do."""
    by_id = {entry.model_id: entry for entry in catalog}
    modality = Modality.MULTIMODAL if task is ModelTask.IMAGE_TEXT else Modality.TEXT
    if requested_model_id == EXTRACTIVE_MODEL_ID:
        if task is not ModelTask.FAST_TEXT:
            raise InvalidInput(
                f"{EXTRACTIVE_MODEL_ID!r} works on text only; an {task.value} job needs one of: "
                + (", ".join(e.model_id for e in catalog if e.task is task) or "none")
            )
        return Resolution(requested_model_id, EXTRACTIVE_MODEL_ID, BUILTIN_POOL, None)
    fitting = [e for e in catalog if e.task is task and e.modality is modality]
    requested = by_id.get(requested_model_id)
    check_fits(requested_model_id, task, catalog)
    if requested is None:
        reason = f"model {requested_model_id!r} is not in the catalog"
    else:
        ok, reason = _usable(requested, installations, live_pools)
        if ok:
            runtime = installations[requested.model_id].runtime
            assert runtime is not None  # _usable checked it
            return Resolution(requested_model_id, requested.model_id, runtime.pool, None)
    candidates = sorted(fitting, key=lambda e: (e.model_id != default_model_id, e.model_id))
    for entry in candidates:
        if entry.model_id != requested_model_id and _usable(entry, installations, live_pools)[0]:
            runtime = installations[entry.model_id].runtime
            assert runtime is not None  # _usable checked it
            return Resolution(
                requested_model_id,
                entry.model_id,
                runtime.pool,
                f"{reason}; using the workspace's "
                f"{'default' if entry.model_id == default_model_id else 'installed'} "
                f"{task.value} model {entry.model_id!r}",
            )
    if allow_extractive and task is ModelTask.FAST_TEXT:
        return Resolution(
            requested_model_id,
            EXTRACTIVE_MODEL_ID,
            BUILTIN_POOL,
            f"{reason}; no installed {task.value} model has a live worker, so the built-in "
            "extractive engine answers (sentences chosen from the prompt and its context)",
        )
    names = ", ".join(e.model_id for e in fitting) or "none in the catalog"
    raise Conflict(
        f"no installed {task.value} model can take the job ({reason}); an admin installs one "
        f"with POST /admin/models/download (candidates: {names})"
    )
