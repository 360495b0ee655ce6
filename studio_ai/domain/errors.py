"""Errors that carry a sentence a person can act on."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken; `message` says what happened and how to fix it."""

    code = "invalid_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"
