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


@pytest.fixture(autouse=True)
def isolated_signing_key(tmp_path_factory, monkeypatch):
    """Every test signs the ledger with a key of its own, outside the working tree (tests that need a
    whole FORGE_HOME take `forge_home`, which moves the key under it)."""
    monkeypatch.setenv("FORGE_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("FORGE_SIGNING_KEY", raising=False)


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


@pytest.fixture
def postgres_server_url():
    """A fresh PostgreSQL database on 127.0.0.1:5432 for one test, dropped afterwards.

    Skips with the reason when the server is unreachable, except under CI=true, where a
    missing server is a failure: CI must run these tests.
    """
    import os
    import uuid

    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin_url = os.environ.get("FORGE_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    try:
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as error:  # any driver or network error means: no server here
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL is not reachable at {admin_url}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {type(error).__name__}")
    name = f"forge_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    server_url = admin_url.rsplit("/", 1)[0]
    yield f"{server_url}/{name}"
    from forge_pipeline.storage.database import drop_postgres_database
    drop_postgres_database(server_url, name)
