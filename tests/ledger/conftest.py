import pytest

from forge_pipeline.storage.database import open_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, not yet migrated database: a SQLite file, or a new database on the local
    PostgreSQL server (tests/conftest.py's postgres_server_url: skipped where unreachable, failed under CI=true)."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_server_url")
    return f"sqlite:///{tmp_path / 'forge.db'}"


@pytest.fixture
def engine(database_url):
    return open_engine(database_url)
