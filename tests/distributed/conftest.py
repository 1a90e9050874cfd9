"""A real local pool for the distributed tests: two `dagster-celery` worker processes, Dagster's
instance and the ledger on the PostgreSQL server, steps through the Redis broker.

Skipped with the reason when the server or the broker is unreachable, except under CI=true,
where that is a failure. The pool has databases of its own and, on Redis, broker keys of its
own (a random `global_keyprefix`), so a concurrent test session on the same servers cannot
take its steps; FORGE_TEST_CELERY_BROKER=amqp://... runs the same tests on RabbitMQ's default
virtual host, without that isolation. Everything the pool started is stopped, and dropped, in
the fixture's finally block.
"""

import json
import os
import uuid

import pytest

SERVER_URL = os.environ.get("FORGE_TEST_POSTGRES_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")
BROKER = os.environ.get("FORGE_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/0")
# Redis gives a lost worker's step to another worker once it has gone unacknowledged this
# long; every step of these tests takes well under it, so none is run twice while alive.
VISIBILITY_TIMEOUT_S = 10


def require(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def reachable_reason() -> str | None:
    """None when the PostgreSQL server and the broker both answer; else what does not."""
    from sqlalchemy import create_engine

    from forge_pipeline.deploy.local_pool import PoolProblem, check_broker

    try:
        engine = create_engine(f"{SERVER_URL}/postgres")
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as error:  # any driver or network error means: no server here
        return f"PostgreSQL not reachable at {SERVER_URL}: {type(error).__name__}"
    try:
        check_broker(BROKER)
    except PoolProblem as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A started pool of two workers listening on every queue; stopped and dropped afterwards."""
    reason = reachable_reason()
    require(reason is None, reason or "")
    from forge_pipeline.deploy import settings
    from forge_pipeline.deploy.local_pool import Pool, start, stop

    prefix = f"forge_dist_{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGE_DEVICE", "cpu")
        patch.delenv("FORGE_POOL_FILE", raising=False)
        patch.delenv("FORGE_CELERY_BACKEND", raising=False)
        patch.setenv("FORGE_CELERY_TRANSPORT_OPTIONS", json.dumps({
            "global_keyprefix": f"{prefix}:", "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "unacked_restore_interval": 1, "unacked_restore_throttle": 1}))
        started = Pool(home=str(tmp_path_factory.mktemp("pool")), server_url=SERVER_URL, database_prefix=prefix,
                       broker=BROKER)
        try:
            start(started, 2, list(settings.WORKER_QUEUES), 1)
            for name, value in started.environment().items():
                patch.setenv(name, value)
            yield started
        finally:
            stop(started)
            drop_pool_records(started, prefix)


def drop_pool_records(pool, prefix: str) -> None:
    from forge_pipeline.storage.database import drop_postgres_database

    for purpose in ("dagster", "ledger"):
        drop_postgres_database(SERVER_URL, f"{prefix}_{purpose}")
    if BROKER.startswith("redis"):
        import redis

        client = redis.Redis.from_url(BROKER)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
