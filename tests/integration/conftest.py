"""Integration tests run against the real broker and store (see tests/support/stack.py)."""

from tests.support.stack import hub_repos, stack

__all__ = ["hub_repos", "stack"]
