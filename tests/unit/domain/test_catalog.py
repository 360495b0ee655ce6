"""The shipped catalog and catalog parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from studio_ai.domain.catalog import find_entry, parse_catalog
from studio_ai.domain.errors import InvalidInput, NotFound
from studio_ai.runtime.settings import PACKAGED_CATALOG
from studio_ai.schemas.models import Modality, ModelTask


def shipped() -> list:
    return parse_catalog(yaml.safe_load(Path(PACKAGED_CATALOG).read_text()), source="shipped")


def test_shipped_catalog_has_the_seed_models() -> None:
    entries = {e.model_id: e for e in shipped()}
    for model_id in ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"):
        assert entries[model_id].modality is Modality.TEXT
        assert entries[model_id].task is ModelTask.FAST_TEXT
    medgemma = entries["google/medgemma-4b-it"]
    assert medgemma.modality is Modality.MULTIMODAL
    assert medgemma.task is ModelTask.IMAGE_TEXT
    assert all(e.gated and e.license and e.approx_size_bytes > 0 for e in entries.values())


def test_bad_entries_name_the_file_and_entry() -> None:
    with pytest.raises(InvalidInput, match=r"cat\.yaml, entry 0"):
        parse_catalog({"models": [{"model_id": "x"}]}, source="cat.yaml")
    with pytest.raises(InvalidInput, match="models:"):
        parse_catalog({}, source="cat.yaml")
    entry = shipped()[0].model_dump(mode="json")
    with pytest.raises(InvalidInput, match="appears twice"):
        parse_catalog({"models": [entry, entry]}, source="cat.yaml")
    with pytest.raises(InvalidInput, match="not valid"):
        parse_catalog({"models": [{**entry, "model_id": "../x"}]}, source="cat.yaml")


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(NotFound, match="google/medgemma-4b-it"):
        find_entry("acme/x", shipped(), [])
    entry, source = find_entry("google/medgemma-4b-it", shipped(), [])
    assert (entry.model_id, source) == ("google/medgemma-4b-it", "catalog")
