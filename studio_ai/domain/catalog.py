"""The model catalog: entries shipped in a file, plus those a workspace's admins add."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import ValidationError

from studio_ai.domain.errors import InvalidInput, NotFound
from studio_ai.domain.model_ids import validate_model_id, validate_revision
from studio_ai.schemas.models import CatalogEntry

CatalogSource = Literal["catalog", "workspace"]


def parse_catalog(document: Mapping[str, Any], *, source: str) -> list[CatalogEntry]:
    """Entries of a catalog document `{models: [...]}`; errors name the file and the entry."""
    raw_models = document.get("models")
    if not isinstance(raw_models, list):
        raise InvalidInput(f"catalog {source}: expected a top-level 'models:' list")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_models):
        try:
            entry = CatalogEntry.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInput(f"catalog {source}, entry {index}: {exc}") from exc
        check_entry(entry)
        if entry.model_id in seen:
            raise InvalidInput(f"catalog {source}: model id {entry.model_id!r} appears twice")
        seen.add(entry.model_id)
        entries.append(entry)
    return entries


def check_entry(entry: CatalogEntry) -> CatalogEntry:
    validate_model_id(entry.model_id)
    validate_model_id(entry.hub_repo_id)
    if entry.revision is not None:
        validate_revision(entry.revision)
    return entry


def find_entry(
    model_id: str, catalog: Iterable[CatalogEntry], workspace_entries: Iterable[CatalogEntry]
) -> tuple[CatalogEntry, CatalogSource]:
    """The entry for `model_id` and where it comes from ('catalog' or 'workspace')."""
    catalog = list(catalog)
    workspace_entries = list(workspace_entries)
    for entry in catalog:
        if entry.model_id == model_id:
            return entry, "catalog"
    for entry in workspace_entries:
        if entry.model_id == model_id:
            return entry, "workspace"
    known = ", ".join(sorted(e.model_id for e in [*catalog, *workspace_entries])) or "none"
    raise NotFound(
        f"model {model_id!r} is not in the catalog; known models: {known}. "
        "An admin can add it with POST /admin/models."
    )
