"""Shared fixtures. Imports NumPy-only modules: the kernel tests must run on a GPU machine
that has CuPy, NumPy and pytest but no Dagster, Polars or SQLAlchemy."""

import pytest

from forge_pipeline.execute.backend import cuda_device_visible


def pytest_collection_modifyitems(config, items):
    if cuda_device_visible():
        return
    skip = pytest.mark.skip(reason="no CUDA device visible (CuPy missing or no driver): GPU parity not checked here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def forge_home(tmp_path, monkeypatch):
    """A fresh FORGE_HOME (SQLite database, artifacts, Dagster instance) for one test."""
    home = tmp_path / "forge"
    monkeypatch.setenv("FORGE_HOME", str(home))
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("FORGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("FORGE_POOL_FILE", raising=False)
    monkeypatch.setenv("FORGE_DEVICE", "auto")
    return home
