import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, forge_home, monkeypatch):
    """The same money tests on the embedded SQLite file and on the real PostgreSQL server."""
    if request.param == "postgres":
        monkeypatch.setenv("FORGE_DATABASE_URL", request.getfixturevalue("postgres_server_url"))
    from forge_pipeline.storage.database import database_url, open_engine
    return open_engine(database_url())
