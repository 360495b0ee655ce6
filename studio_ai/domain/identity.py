"""API keys: the caller's workspace, user and role. Keys are stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum

from pydantic import BaseModel

from studio_ai.domain.errors import InvalidInput

KEY_PREFIX = "sk-studio-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    # A platform operator: assigns plans to workspaces (/operator); not an admin of any
    # workspace's models or data.
    OPERATOR = "operator"


class Caller(BaseModel):
    workspace_id: str
    user_id: str
    role: Role
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def validate_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


def new_api_key() -> str:
    """A fresh secret; it is shown once and never stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # The keys are 256-bit random secrets, so a fast hash is enough: there is nothing to
    # brute-force that a slow hash would protect.
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key_hash: str) -> str:
    return key_hash[:12]
