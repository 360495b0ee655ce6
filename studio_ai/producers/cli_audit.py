"""`studio-ai audit ...`: the audit log for operators, read from the store directly."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer
from pymongo.errors import PyMongoError
from rich.console import Console

from studio_ai.domain.audit_query import MAX_PAGE, audit_query, decode_cursor
from studio_ai.domain.errors import DomainError, InvalidInput
from studio_ai.domain.identity import validate_name
from studio_ai.runtime.settings import Settings

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
err = Console(stderr=True)


@audit_app.command("export")
def audit_export(
    workspace: Annotated[str, typer.Option(help="Workspace id.")],
    since: Annotated[
        str | None, typer.Option(help="ISO 8601; records created at or after it.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601; records created before it.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. image.deleted.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Write a workspace's audit records as JSON lines, newest first (the count goes to
    stderr)."""
    from studio_ai.adapters.mongo_store import MongoStore

    settings = Settings()

    async def export(out: TextIO) -> int:
        validate_name("workspace", workspace)
        query = audit_query(
            workspace,
            action=action,
            since=_moment("since", since),
            until=_moment("until", until),
            limit=MAX_PAGE,
        )
        store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        try:
            count = 0
            while True:
                records, cursor = await store.audit.query(query)
                for record in records:
                    out.write(record.model_dump_json() + "\n")
                count += len(records)
                if cursor is None:
                    return count
                query = replace(query, after=decode_cursor(cursor))
        finally:
            await store.close()

    try:
        if output is None:
            count = asyncio.run(export(sys.stdout))
        else:
            with output.open("w", encoding="utf-8") as out:
                count = asyncio.run(export(out))
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=1) from exc
    except PyMongoError as exc:
        err.print(f"[red]error:[/red] the store is not reachable (STUDIO_MONGO_URL): {exc}")
        raise typer.Exit(code=1) from exc
    err.print(f"exported {count} audit record(s) of workspace {workspace!r}")


def _moment(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--{option} {value!r} is not an ISO 8601 time; e.g. 2025-01-31 or "
            "2025-01-31T12:00:00+00:00"
        ) from None
