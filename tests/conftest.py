"""Shared fixtures: the tiny test models and a local hub server that serves them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from studio_ai.devkit.hub_server import HubServer
from studio_ai.devkit.tiny_models import create_all

# The running system (gateway, consumers, hub servers) for integration and e2e tests.
pytest_plugins = ["tests.support.stack"]


@pytest.fixture(scope="session")
def tiny_repos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with studio-ai-test/tiny-llama and studio-ai-test/tiny-gemma3, made once."""
    repos = tmp_path_factory.mktemp("hub-repos")
    create_all(repos)
    return repos


@pytest.fixture(scope="session")
def hub_server(tiny_repos_dir: Path) -> Iterator[HubServer]:
    """A running hub over `tiny_repos_dir`; tests that change its knobs must call `reset()`."""
    with HubServer(tiny_repos_dir) as hub:
        yield hub
