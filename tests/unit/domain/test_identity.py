"""API keys are random, stored hashed, and names are validated."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.identity import KEY_PREFIX, hash_api_key, new_api_key, validate_name


def test_keys_are_unique_and_only_their_hash_is_kept() -> None:
    a, b = new_api_key(), new_api_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) > 40
    assert hash_api_key(a) != hash_api_key(b)
    assert a not in hash_api_key(a)


@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 65, "-lead"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name("workspace", name)
