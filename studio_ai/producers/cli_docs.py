"""`studio-ai docs`: write the AsyncAPI and OpenAPI documents, or check that they are current.

`generate` writes docs/asyncapi.json and docs/openapi.json (what `make docs` runs); `check` exits
1 naming each file that differs from what the code generates now. Neither needs Kafka, the store
or the gateway running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

docs_app = typer.Typer(help="Event and HTTP contract documents.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)

# The generator imports the gateway and every consumer group: loaded only when a command runs.
DEFAULT_OUT = Path("docs")

OutDir = Annotated[
    Path, typer.Option("--out", help="Folder of asyncapi.json and openapi.json.", file_okay=False)
]


@docs_app.command("generate")
def docs_generate(out: OutDir = DEFAULT_OUT) -> None:
    """Write asyncapi.json (events) and openapi.json (HTTP API) under --out."""
    from studio_ai.producers.contract_docs import write_documents

    changed = write_documents(out)
    for path in changed:
        console.print(f"wrote {path}")
    if not changed:
        console.print(f"{out}/: up to date")


@docs_app.command("check")
def docs_check(out: OutDir = DEFAULT_OUT) -> None:
    """Exit 1 when a document under --out is missing or differs from the generated one."""
    from studio_ai.producers.contract_docs import drifted_documents

    drifted = drifted_documents(out)
    for path in drifted:
        what = "differs from the code" if path.exists() else "is missing"
        err.print(f"[red]drifted:[/red] {path} {what}; run `make docs`")
    if drifted:
        raise typer.Exit(code=1)
    console.print(f"{out}/: up to date")
