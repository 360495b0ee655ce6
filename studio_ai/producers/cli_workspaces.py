"""`studio-ai workspaces`: operators assign plans and read a workspace's usage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from studio_ai.domain.errors import DomainError
from studio_ai.domain.identity import validate_name
from studio_ai.producers.governance import parse_quota_overrides, plan_of, set_plan
from studio_ai.producers.operator_session import operator_session
from studio_ai.runtime.plans_file import load_plans
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.plans import Plan, PlanOverrides, SetPlanRequest

T = TypeVar("T")

workspaces_app = typer.Typer(help="Workspaces: plans and quotas.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@workspaces_app.command("set-plan")
def set_plan_command(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    plan: Annotated[str, typer.Argument(help="Plan name (see `studio-ai workspaces plans`).")],
    quota: Annotated[
        list[str] | None,
        typer.Option(
            help="Override a quota of the plan for this workspace: name=value or "
            "name=unlimited (repeat the option).",
        ),
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option(help="Override the plan's longest image retention (days).")
    ] = None,
    operator: Annotated[
        str, typer.Option(help="Who makes the change (recorded in the audit log).")
    ] = "operator",
) -> None:
    """Assign a plan to a workspace (audited in that workspace)."""
    settings = Settings()

    async def run() -> Plan:
        plans = load_plans(settings)
        request = SetPlanRequest(
            plan=plan,
            overrides=PlanOverrides(
                quotas=parse_quota_overrides(quota or []),
                image_retention_max_days=retention_days,
            ),
        )
        async with operator_session(settings, client_id="studio-ai-cli") as session:
            await set_plan(
                session.store,
                session.publisher,
                plans,
                workspace_id=workspace,
                request=request,
                by=f"operator:{validate_name('user', operator)}",
                correlation_id=str(uuid.uuid4()),
            )
            return await plan_of(session.store, plans, settings.default_plan, workspace)

    effective = _run(run())
    err.print(f"workspace {workspace!r} is now on plan {effective.name!r}")
    _print_plan(effective)


@workspaces_app.command("show")
def show_command(workspace: Annotated[str, typer.Argument(help="Workspace id.")]) -> None:
    """A workspace's effective plan (assignment or default, with overrides)."""
    from studio_ai.adapters.mongo_store import MongoStore

    settings = Settings()

    async def run() -> Plan:
        validate_name("workspace", workspace)
        plans = load_plans(settings)
        store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        try:
            return await plan_of(store, plans, settings.default_plan, workspace)
        finally:
            await store.close()

    _print_plan(_run(run()))


@workspaces_app.command("reconcile")
def reconcile_command(workspace: Annotated[str, typer.Argument(help="Workspace id.")]) -> None:
    """Settle the workspace's quota reservations that were left open (a job whose end was
    never settled, or one that was never queued); report those still running."""
    from studio_ai.adapters.mongo_store import MongoStore
    from studio_ai.producers.quota_reconcile import Reconciled, reconcile_workspace

    settings = Settings()

    async def run() -> Reconciled:
        validate_name("workspace", workspace)
        store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        try:
            return await reconcile_workspace(store, workspace)
        finally:
            await store.close()

    report = _run(run())
    err.print(
        f"workspace {workspace!r}: {len(report.settled)} ended job(s) settled, "
        f"{len(report.released)} never-queued job(s) released, {len(report.running)} still "
        "queued or running"
    )
    for job_id in report.running:
        console.print(job_id, highlight=False)


@workspaces_app.command("plans")
def plans_command() -> None:
    """The plans in the plans file (STUDIO_PLANS_PATH)."""
    try:
        plans = load_plans(Settings())
    except DomainError as exc:
        raise _fail(exc.message) from exc
    for plan in plans.values():
        _print_plan(plan)


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except DomainError as exc:
        raise _fail(exc.message) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise _fail(problems) from exc
    except PyMongoError as exc:
        raise _fail(f"the store is not reachable (STUDIO_MONGO_URL): {exc}") from exc
    except KafkaError as exc:
        raise _fail(f"the broker is not reachable (STUDIO_KAFKA_BOOTSTRAP): {exc}") from exc


def _print_plan(plan: Plan) -> None:
    table = Table(title=f"plan {plan.name}", show_header=False)
    table.add_row("tasks", ", ".join(t.value for t in plan.tasks))
    table.add_row("modalities", ", ".join(m.value for m in plan.modalities))
    table.add_row("models", ", ".join(plan.models))
    for name, limit in plan.quotas.model_dump().items():
        table.add_row(name, "unlimited" if limit is None else f"{limit:g}")
    table.add_row("image_retention_max_days", str(plan.image_retention_max_days))
    console.print(table)
