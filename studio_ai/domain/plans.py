"""Plans: which features a workspace may use, and the limits that apply. Pure logic: no I/O.

A workspace's effective plan is its assigned plan with the operator's overrides laid over the
quotas and the image retention; overrides never widen the features (tasks, modalities,
models): a bigger plan does that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from pydantic import ValidationError

from studio_ai.domain.errors import DomainError, InvalidInput
from studio_ai.schemas.inference import TextTask
from studio_ai.schemas.models import Modality
from studio_ai.schemas.plans import Plan, PlanOverrides, Quotas


class NotInPlan(DomainError):
    """The workspace's plan does not include a feature (answered 403)."""

    code = "not_in_plan"


def parse_plans(document: Any, *, source: str) -> dict[str, Plan]:
    """The `plans:` mapping of a plans file, validated; order is kept (smallest plan first)."""
    if not isinstance(document, dict) or not isinstance(document.get("plans"), dict):
        raise InvalidInput(f"plans file {source}: expected a mapping 'plans: {{name: {{...}}}}'")
    plans: dict[str, Plan] = {}
    for name, body in document["plans"].items():
        if not isinstance(body, dict):
            raise InvalidInput(f"plans file {source}: plan {name!r} must be a mapping")
        try:
            plans[str(name)] = Plan.model_validate({"name": name, **body})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise InvalidInput(f"plans file {source}: plan {name!r}: {problems}") from exc
    if not plans:
        raise InvalidInput(f"plans file {source} defines no plan")
    return plans


def effective_plan(plan: Plan, overrides: PlanOverrides | None) -> Plan:
    if overrides is None:
        return plan
    quotas = plan.quotas.model_dump()
    quotas.update({name.value: limit for name, limit in overrides.quotas.items()})
    retention = overrides.image_retention_max_days
    return plan.model_copy(
        update={
            "quotas": Quotas.model_validate(quotas),
            "image_retention_max_days": plan.image_retention_max_days
            if retention is None
            else retention,
        }
    )


def model_allowed(plan: Plan, model_id: str) -> bool:
    return any(fnmatchcase(model_id, pattern) for pattern in plan.models)


def check_features(
    plan: Plan,
    plans: Mapping[str, Plan],
    *,
    workspace_id: str,
    text_task: TextTask,
    modality: Modality,
    model_id: str,
) -> None:
    """Raise NotInPlan naming the first plan that would allow what `plan` does not."""
    # An image job has no text task of its own (it is free-form on its image): the modality
    # decides.
    if modality is Modality.TEXT and text_task not in plan.tasks:
        _deny(
            plan,
            plans,
            workspace_id,
            f"the {text_task.value!r} task",
            lambda p: text_task in p.tasks,
        )
    if modality not in plan.modalities:
        what = "image input" if modality is Modality.MULTIMODAL else f"{modality.value} input"
        _deny(plan, plans, workspace_id, what, lambda p: modality in p.modalities)
    check_model(plan, plans, workspace_id=workspace_id, model_id=model_id)


def check_model(plan: Plan, plans: Mapping[str, Plan], *, workspace_id: str, model_id: str) -> None:
    if not model_allowed(plan, model_id):
        _deny(
            plan, plans, workspace_id, f"model {model_id!r}", lambda p: model_allowed(p, model_id)
        )


def check_retention(plan: Plan, retention_days: int) -> None:
    if retention_days > 0 and plan.image_retention_max_days == 0:
        raise InvalidInput(
            f"plan {plan.name!r} keeps no image beyond the jobs that use it: upload with "
            "consent=false"
        )
    if retention_days > plan.image_retention_max_days:
        raise InvalidInput(
            f"plan {plan.name!r} keeps consented images at most {plan.image_retention_max_days} "
            f"day(s); ask for retention_days={plan.image_retention_max_days} or less"
        )


def _deny(
    plan: Plan,
    plans: Mapping[str, Plan],
    workspace_id: str,
    what: str,
    allows: Callable[[Plan], bool],
) -> None:
    better = next((p.name for p in plans.values() if p.name != plan.name and allows(p)), None)
    hint = (
        f"plan {better!r} includes it: an operator can move the workspace with "
        f"`studio-ai workspaces set-plan {workspace_id} {better}`"
        if better
        else "no plan includes it"
    )
    raise NotInPlan(
        f"workspace {workspace_id!r} is on plan {plan.name!r}, which does not include "
        f"{what}; {hint}"
    )
