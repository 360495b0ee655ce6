"""Model ids from callers, and the folder each one is installed into.

A model id looks like a hub repo id (`org/name`, or `name`). It is validated strictly so that
the folder derived from it can never leave the models directory.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from studio_ai.domain.errors import InvalidInput

_SEGMENT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_POOL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


def validate_model_id(model_id: str) -> str:
    """Return `model_id` if it is `name` or `org/name` made of safe characters, else raise."""
    parts = model_id.split("/")
    # '--' is the folder separator (org--name): allowing it in a part would let two ids
    # (`a/b` and `a--b`) share one folder.
    if not 1 <= len(parts) <= 2 or any(
        not _SEGMENT.match(part) or ".." in part or "--" in part for part in parts
    ):
        raise InvalidInput(
            f"model id {model_id!r} is not valid: use 'org/name' or 'name', made of letters, "
            "digits, '.', '_' and '-', each part starting and ending with a letter or digit "
            "(no '..', no '--', no leading '/', at most 96 characters a part)"
        )
    return model_id


def validate_revision(revision: str) -> str:
    if not _REVISION.match(revision) or ".." in revision:
        raise InvalidInput(
            f"revision {revision!r} is not valid: give a commit sha, a tag or a branch name "
            "(letters, digits, '.', '_', '-', '/'; no '..')"
        )
    return revision


def model_dir_name(model_id: str) -> str:
    """The folder name of a model under the models directory: `org--name`."""
    validate_model_id(model_id)
    name = "--".join(model_id.split("/"))
    # Belt and braces: the result is always a single, relative path component.
    path = PurePosixPath(name)
    if path.is_absolute() or len(path.parts) != 1 or name in {".", ".."}:
        raise InvalidInput(f"model id {model_id!r} does not map to a safe folder name")
    return name


def default_pool(model_id: str) -> str:
    """A worker pool name derived from the model id (`org/Llama-3.2-1B` -> `llama-3-2-1b`)."""
    name = model_id.split("/")[-1].lower()
    pool = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40].strip("-")
    return pool or "default"


def validate_pool(pool: str) -> str:
    if not _POOL.match(pool):
        raise InvalidInput(
            f"pool {pool!r} is not valid: use lower-case letters, digits and '-', at most 40 "
            "characters, starting and ending with a letter or digit"
        )
    return pool
