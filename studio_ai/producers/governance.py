"""Plans and quotas at the gateway: a workspace's effective plan, reserving a job's share of
its quotas at admission (429 when one is used up), giving it back when a job never got
queued, the usage report, and operators assigning plans.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import ValidationError

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.identity import Caller, validate_name
from studio_ai.domain.plans import effective_plan
from studio_ai.domain.quotas import (
    Exceeded,
    Metering,
    Outcome,
    check,
    counter_key,
    period_of,
    reservation,
    resets_at,
)
from studio_ai.producers.gateway.context import GatewayState, HttpProblem, cached
from studio_ai.runtime.audit import publish_audit
from studio_ai.runtime.broker import EventPublisher
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.inference import QuotaReservation
from studio_ai.schemas.plans import (
    Plan,
    QuotaName,
    QuotaUsage,
    SetPlanRequest,
    UsageView,
    WorkspacePlan,
)

log = logging.getLogger(__name__)

_PLAN_CACHE_S = 1.0


async def plan_of(
    store: MongoStore, plans: Mapping[str, Plan], default_plan: str, workspace_id: str
) -> Plan:
    """The workspace's effective plan: its assignment (or the default) with its overrides."""
    assignment = await store.plans.get(workspace_id)
    if assignment is None:
        return plans[default_plan]
    plan = plans.get(assignment.plan)
    if plan is None:
        log.warning(
            "the workspace's plan is not in the plans file (any more); it gets the default plan",
            extra={"workspace_id": workspace_id, "plan": assignment.plan, "default": default_plan},
        )
        return plans[default_plan]
    return effective_plan(plan, assignment.overrides)


async def workspace_plan(state: GatewayState, workspace_id: str) -> Plan:
    return await cached(
        state,
        f"plan:{workspace_id}",
        _PLAN_CACHE_S,
        lambda: plan_of(state.store, state.plans, state.settings.default_plan, workspace_id),
    )


async def reserve(
    state: GatewayState,
    caller: Caller,
    plan: Plan,
    job_id: uuid.UUID,
    *,
    tokens: int,
    metering: Metering,
) -> QuotaReservation:
    """Reserve a job's share of the workspace's quotas, or answer 429 naming the limit hit."""
    now = datetime.now(UTC)
    deltas = reservation(now, tokens=tokens, metering=metering)

    def decide(totals: Mapping[str, float]) -> dict[str, float] | Exceeded:
        return check(totals, deltas, plan.quotas, now, metering=metering) or deltas

    appended = await state.store.quotas.append(
        caller.workspace_id, f"reserve:{job_id}", decide, now=now
    )
    if isinstance(appended, Exceeded):
        raise quota_problem(appended, plan)
    assert appended is not None
    head, _ = appended
    try:
        await state.store.quotas.record_reservation(
            job_id,
            caller.workspace_id,
            deltas,
            seq=head.seq,
            meter={"tokens": metering.tokens, "gpu": metering.gpu},
        )
    except BaseException:
        # Without its record the reservation could never be settled: take it back now.
        await state.store.quotas.append(
            caller.workspace_id,
            f"release:{job_id}",
            lambda _: {key: -amount for key, amount in deltas.items()},
        )
        raise
    return QuotaReservation(
        workspace_id=caller.workspace_id,
        deltas=deltas,
        tokens_metered=metering.tokens,
        gpu_metered=metering.gpu,
        settle_at_end=plan.quotas.concurrent_jobs is not None,
    )


def quota_problem(exceeded: Exceeded, plan: Plan) -> HttpProblem:
    return HttpProblem(
        429,
        "quota_exceeded",
        exceeded.message(plan.name),
        {"Retry-After": str(exceeded.retry_after_s)},
        extra={
            "quota": exceeded.quota.value,
            "limit": exceeded.limit,
            "used": exceeded.used,
            "plan": plan.name,
            "resets_at": exceeded.resets_at.isoformat() if exceeded.resets_at else None,
        },
    )


async def release(store: MongoStore, job_id: uuid.UUID, outcome: Outcome) -> bool:
    """Give a job's whole reservation back (it never got queued); once per job."""
    return await store.quotas.settle_job(job_id, outcome)


# --- usage and plan assignment ----------------------------------------------------------


async def usage(state: GatewayState, caller: Caller) -> UsageView:
    plan = await plan_of(state.store, state.plans, state.settings.default_plan, caller.workspace_id)
    totals = await state.store.quotas.totals(caller.workspace_id)
    now = datetime.now(UTC)
    quotas = []
    for quota in QuotaName:
        limit = plan.quotas.limit(quota)
        used = max(0.0, totals.get(counter_key(quota, now), 0.0))
        quotas.append(
            QuotaUsage(
                quota=quota,
                limit=limit,
                used=used,
                remaining=None if limit is None else max(0.0, limit - used),
                period=period_of(quota, now),
                resets_at=resets_at(quota, now),
            )
        )
    return UsageView(
        workspace_id=caller.workspace_id,
        plan=plan.name,
        tasks=plan.tasks,
        modalities=plan.modalities,
        models=plan.models,
        image_retention_max_days=plan.image_retention_max_days,
        quotas=quotas,
    )


async def set_plan(
    store: MongoStore,
    publisher: EventPublisher,
    plans: Mapping[str, Plan],
    *,
    workspace_id: str,
    request: SetPlanRequest,
    by: Caller | str,
    correlation_id: str,
) -> WorkspacePlan:
    """Assign a plan (and overrides) to a workspace; the change is audited in that workspace."""
    validate_name("workspace", workspace_id)
    if request.plan not in plans:
        raise InvalidInput(f"there is no plan {request.plan!r}; the plans are: {', '.join(plans)}")
    try:
        effective_plan(plans[request.plan], request.overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"the overrides do not make a valid plan: {problems}") from exc
    # An operator is no member of the workspace: their id says where they come from, so it
    # cannot be taken for one of the workspace's own users.
    user = f"operator:{by.workspace_id}/{by.user_id}" if isinstance(by, Caller) else by
    assignment = WorkspacePlan(
        workspace_id=workspace_id,
        plan=request.plan,
        overrides=request.overrides,
        updated_at=datetime.now(UTC),
        updated_by=user,
    )
    overrides = ", ".join(
        f"{name.value}={'unlimited' if limit is None else f'{limit:g}'}"
        for name, limit in request.overrides.quotas.items()
    )
    if request.overrides.image_retention_max_days is not None:
        overrides += f"{', ' if overrides else ''}image_retention_max_days="
        overrides += str(request.overrides.image_retention_max_days)
    # Audited first: a change that happened always has its record.
    await publish_audit(
        publisher,
        workspace_id=workspace_id,
        user_id=user,
        action=AuditAction.PLAN_CHANGED,
        outcome=AuditOutcome.DONE,
        correlation_id=correlation_id,
        inputs_refs=[InputRef(ref=f"plan:{request.plan}")],
        reason=f"plan {request.plan}" + (f" with {overrides}" if overrides else ""),
    )
    await store.plans.put(assignment)
    return assignment


def parse_quota_overrides(items: list[str]) -> dict[QuotaName, float | None]:
    """`name=value` pairs from the CLI (`unlimited` for no limit)."""
    overrides: dict[QuotaName, float | None] = {}
    names = ", ".join(q.value for q in QuotaName)
    for item in items:
        name, sep, value = item.partition("=")
        try:
            quota = QuotaName(name.strip())
        except ValueError:
            raise InvalidInput(f"unknown quota {name!r}; the quotas are: {names}") from None
        if not sep:
            raise InvalidInput(f"give a quota as name=value (or name=unlimited), not {item!r}")
        if value.strip().lower() == "unlimited":
            overrides[quota] = None
            continue
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"quota {name}: {value!r} is not a number or 'unlimited'") from None
        if number < 0:
            raise InvalidInput(f"quota {name} must not be negative")
        overrides[quota] = number
    return overrides
