"""Checks that the arguments a container runs with are a real `studio-ai` command.

Used by the compose and Kubernetes manifest tests: the image's ENTRYPOINT is `studio-ai`, so a
service's `command` (compose) or a container's `args` (Kubernetes) are the CLI's arguments. They
are resolved through the typer app's click commands and parsed without running anything, so a
renamed command, a misspelt option or a missing required option fails here, not at deploy time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import typer
import typer.core
import typer.main

from studio_ai.consumers.app import GROUPS
from studio_ai.domain.errors import DomainError
from studio_ai.domain.model_ids import validate_pool
from studio_ai.producers.cli import app


@dataclass(frozen=True)
class CliCall:
    path: tuple[str, ...]  # e.g. ("worker", "run")
    params: dict[str, Any]  # parsed option values, e.g. {"group": ["downloader"], ...}


@cache
def _root_command() -> typer.core.TyperGroup:
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    return command


def parse_cli_args(args: Sequence[str]) -> CliCall:
    """Resolve `studio-ai ARGS` to its command and parsed options; AssertionError if the CLI
    would refuse them (unknown command or option, bad value, missing required option, an
    unknown consumer group, an invalid pool name)."""
    assert all(isinstance(a, str) for a in args), f"arguments must be strings: {args!r}"
    command: typer.core.TyperCommand | typer.core.TyperGroup = _root_command()
    ctx = typer.Context(command, info_name="studio-ai")
    rest = list(args)
    path: list[str] = []
    while isinstance(command, typer.core.TyperGroup):
        assert rest and not rest[0].startswith("-"), (
            f"`studio-ai {' '.join(args)}` names a command group ({' '.join(path) or 'the CLI'}),"
            f" not a command; its commands: {', '.join(command.list_commands(ctx))}"
        )
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, (
            f"`studio-ai {' '.join(args)}`: no command {name!r} under "
            f"`studio-ai {' '.join(path)}` (it has: {', '.join(command.list_commands(ctx))})"
        )
        path.append(name)
        command = sub
        ctx = typer.Context(command, info_name=name, parent=ctx)
    try:
        parsed = command.make_context(" ".join(path), rest, parent=ctx.parent)
    except typer.TyperException as exc:  # the CLI's usage errors (typer's own click)
        raise AssertionError(
            f"`studio-ai {' '.join(args)}` is refused: {exc.format_message()}"
        ) from exc
    call = CliCall(tuple(path), dict(parsed.params))
    if call.path == ("worker", "run"):
        unknown = [g for g in call.params["group"] if g not in GROUPS]
        assert not unknown, f"unknown consumer group(s) {unknown}; known: {list(GROUPS)}"
    if call.path == ("worker", "inference"):
        for pool in call.params["pool"]:
            try:
                validate_pool(pool)
            except DomainError as exc:
                raise AssertionError(exc.message) from exc
    return call
