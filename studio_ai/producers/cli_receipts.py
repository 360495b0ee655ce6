"""`studio-ai receipts`: make a signing key, and verify a receipt offline with public keys only.

Verification needs no gateway, store or broker: the receipt file, the output (optional) and the
public JWK set (a file saved from /.well-known/studio-ai-keys.json, or its URL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from studio_ai.domain.receipts import (
    KeyConfigError,
    key_id_for,
    new_private_key,
    private_key_seed,
    public_jwk,
    public_keys_from_jwks,
    verify,
)

receipts_app = typer.Typer(help="Provenance receipts.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)

# Exit codes: 1 the receipt is not valid, 2 the inputs could not be read.
_INVALID = 1
_UNREADABLE = 2


def _unreadable(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=_UNREADABLE)


@receipts_app.command("keygen")
def keygen() -> None:
    """Make a new Ed25519 signing key: prints its seed (secret), key id and public JWK."""
    private_key = new_private_key()
    key_id = key_id_for(private_key.public_key())
    jwk = public_jwk(private_key.public_key(), key_id).model_dump(mode="json")
    for line in (
        f"new receipt signing key {key_id}. Set on the gateway (keep the seed secret):",
        "  STUDIO_RECEIPT_SIGNING_KEY=<the seed printed on stdout>",
        "When it replaces an older key, add the older key's public JWK (from "
        "/.well-known/studio-ai-keys.json) to STUDIO_RECEIPT_RETIRED_PUBLIC_KEYS (a JSON list "
        "of JWK strings), so receipts signed with it keep verifying.",
        f"public JWK: {json.dumps(jwk)}",
    ):
        err.print(line, highlight=False, soft_wrap=True, markup=False)
    console.print(private_key_seed(private_key), highlight=False, soft_wrap=True)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _unreadable(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise _unreadable(f"the {what} {path} is not JSON: {exc}") from exc


def _load_keys(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=10, follow_redirects=True)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreadable(f"cannot fetch the public keys from {source}: {exc}") from exc
    else:
        document = _read_json(Path(source), "key set")
    if not isinstance(document, dict):
        raise _unreadable(f"{source} is not a JWK set (a JSON object with `keys`)")
    try:
        return dict(public_keys_from_jwks(document))
    except KeyConfigError as exc:
        raise _unreadable(f"{source}: {exc}") from exc


@receipts_app.command("verify")
def verify_file(
    file: Annotated[
        Path,
        typer.Argument(help='A receipt (JSON), or {"receipt": ..., "output": "..."}.'),
    ],
    keys: Annotated[
        str | None,
        typer.Option(
            envvar="STUDIO_RECEIPT_KEYS",
            help="Public keys: a JWK set file saved from /.well-known/studio-ai-keys.json, "
            "or that URL.",
            show_default=False,
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(help="The output the receipt should cover (its exact bytes)."),
    ] = None,
) -> None:
    """Verify a receipt offline: its signature, and the output when one is given."""
    if not keys:
        raise _unreadable(
            "pass --keys: a file saved from GET /.well-known/studio-ai-keys.json (or its URL)"
        )
    document = _read_json(file, "receipt file")
    output: str | bytes | None = None
    receipt = document
    if isinstance(document, dict) and isinstance(document.get("receipt"), dict):
        receipt = document["receipt"]
        output = document.get("output") if isinstance(document.get("output"), str) else None
    if output_file is not None:
        try:
            output = output_file.read_bytes()
        except OSError as exc:
            raise _unreadable(f"cannot read the output {output_file}: {exc.strerror}") from exc
    if not isinstance(receipt, dict):
        err.print(f"[red]invalid[/red]: malformed: {file} holds no receipt (a JSON object)")
        raise typer.Exit(code=_INVALID)
    result = verify(receipt, _load_keys(keys), output)
    if not result.valid:
        reason = result.reason.value if result.reason else "invalid"
        err.print(f"[red]invalid[/red]: {reason}: {result.detail}", soft_wrap=True)
        raise typer.Exit(code=_INVALID)
    checked = "signature and output" if output is not None else "signature (no output given)"
    console.print(
        f"[green]valid[/green]: receipt {result.receipt_id}, key {result.key_id}; checked the "
        f"{checked}",
        soft_wrap=True,
    )
