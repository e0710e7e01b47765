"""Shared test settings."""

from __future__ import annotations

import os

import pytest

# Tests build small models, which step fastest on one thread on a 2-core
# machine; child processes inherit this through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def isolated_store(tmp_path_factory, monkeypatch):
    """Point the default run store and decode cache at temporary directories.

    Commands that a test runs without --runs-dir would otherwise write runs
    into the repository's saved_runs/.
    """
    root = tmp_path_factory.mktemp("isolated")
    monkeypatch.setenv("LAYERLAB_RUNS_DIR", str(root / "runs"))
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(root / "cache"))
