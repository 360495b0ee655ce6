"""Model ids from callers can never name a folder outside the models directory."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.model_ids import (
    default_pool,
    model_dir_name,
    validate_pool,
    validate_revision,
)


@pytest.mark.parametrize(
    ("model_id", "folder"),
    [
        ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama--Llama-3.2-1B-Instruct"),
        ("google/medgemma-4b-it", "google--medgemma-4b-it"),
        ("gpt2", "gpt2"),
    ],
)
def test_valid_ids_map_to_one_folder_name(model_id: str, folder: str) -> None:
    assert model_dir_name(model_id) == folder


@pytest.mark.parametrize(
    "model_id",
    [
        "..",
        "../x",
        "a/../b",
        "/etc/passwd",
        "a/b/c",
        "org/..",
        ".hidden",
        "org/.x",
        "a\\b",
        "a//b",
        "",
        "a/",
        "x" * 97,
        "org/name.",
        "org/-name",
        "a b",
        "a/b\x00",
        "a--b",
        "org/x--y",
    ],
)
def test_unsafe_ids_are_refused_with_the_rule(model_id: str) -> None:
    with pytest.raises(InvalidInput, match="not valid"):
        model_dir_name(model_id)


def test_revisions_cannot_traverse() -> None:
    assert validate_revision("main") == "main"
    assert validate_revision("a" * 40) == "a" * 40
    with pytest.raises(InvalidInput):
        validate_revision("../../etc")


def test_pools_are_derived_and_validated() -> None:
    assert default_pool("meta-llama/Llama-3.2-1B-Instruct") == "llama-3-2-1b-instruct"
    assert validate_pool("medgemma") == "medgemma"
    with pytest.raises(InvalidInput):
        validate_pool("Bad_Pool")
