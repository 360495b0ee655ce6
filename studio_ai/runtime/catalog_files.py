"""Reading the catalog files named in the settings."""

from __future__ import annotations

import yaml

from studio_ai.domain.catalog import parse_catalog
from studio_ai.domain.errors import InvalidInput
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import CatalogEntry


def load_catalog(settings: Settings) -> list[CatalogEntry]:
    entries: list[CatalogEntry] = []
    for path in settings.catalog_paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"catalog {path} cannot be read: {exc}") from exc
        for entry in parse_catalog(document, source=str(path)):
            if any(e.model_id == entry.model_id for e in entries):
                raise InvalidInput(f"catalog {path}: model id {entry.model_id!r} is defined twice")
            entries.append(entry)
    return entries
