"""Plans and usage: a workspace's use against its limits, the plans on offer, and operators
assigning a plan to a workspace."""

from __future__ import annotations

from fastapi import APIRouter, Request

from studio_ai.producers.gateway.context import AnyCaller, OperatorCaller, State
from studio_ai.producers.governance import plan_of, set_plan, usage
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.plans import Plan, SetPlanRequest, UsageView, WorkspacePlan

router = APIRouter(tags=["governance: plans and quotas"])


@router.get("/workspaces/me/usage", response_model=UsageView)
async def my_usage(state: State, caller: AnyCaller) -> UsageView:
    """The caller's workspace: its plan, what the plan allows, and use against every quota."""
    return await usage(state, caller)


@router.get("/plans", response_model=list[Plan])
async def list_plans(state: State, caller: AnyCaller) -> list[Plan]:
    """The plans on offer, smallest first."""
    return list(state.plans.values())


@router.get(
    "/operator/workspaces/{workspace_id}/plan",
    response_model=Plan,
    responses={403: {"model": ErrorBody, "description": "Not an operator key."}},
)
async def get_workspace_plan(workspace_id: str, state: State, caller: OperatorCaller) -> Plan:
    """A workspace's effective plan (its assignment, or the default, with overrides)."""
    from studio_ai.domain.identity import validate_name

    validate_name("workspace", workspace_id)
    return await plan_of(state.store, state.plans, state.settings.default_plan, workspace_id)


@router.put(
    "/operator/workspaces/{workspace_id}/plan",
    response_model=WorkspacePlan,
    responses={
        403: {"model": ErrorBody, "description": "Not an operator key."},
        422: {"model": ErrorBody, "description": "Unknown plan or invalid overrides."},
    },
)
async def put_workspace_plan(
    workspace_id: str,
    body: SetPlanRequest,
    request: Request,
    state: State,
    caller: OperatorCaller,
) -> WorkspacePlan:
    """Assign a plan to a workspace, with optional overrides of its quotas and retention."""
    assignment = await set_plan(
        state.store,
        state.publisher,
        state.plans,
        workspace_id=workspace_id,
        request=body,
        by=caller,
        correlation_id=request.state.correlation_id,
    )
    state.cache.pop(f"plan:{workspace_id}", None)
    return assignment
