"""Idempotency under concurrency, over a real uvicorn server on a loopback port, on SQLite and PostgreSQL."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from forge_pipeline.api.app import ApiSettings, create_app
from forge_pipeline.api.keys import Kind, create_key
from forge_pipeline.storage.database import workload_events, workloads
from tests.api.conftest import LiveServer, small_request

CONCURRENT = 16
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def post_all(url: str, key: str, documents: list[dict]) -> list[tuple[int, dict]]:
    """POST every document at once (released together by a barrier); (status, body) each, in order."""
    barrier = threading.Barrier(len(documents))

    def post(document: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"{url}/v1/workloads", data=json.dumps(document).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    with ThreadPoolExecutor(len(documents)) as pool:
        return list(pool.map(post, documents))


def counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(workloads)).scalar_one(),
                connection.execute(select(func.count()).select_from(workload_events)).scalar_one())


@pytest.mark.parametrize("database_on", DATABASES, indirect=True)
def test_sixteen_concurrent_submissions_of_one_request_make_one_workload(database_on):
    """One 201 and fifteen 200s naming the same workload; one row and one event stored."""
    key = create_key(database_on, Kind.ORGANIZATION, "acme")[1]
    with LiveServer(create_app(ApiSettings(rate_limit="1000/second"))) as server:
        answers = post_all(server.url, key, [small_request("acme", "same-one")] * CONCURRENT)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (CONCURRENT - 1) + [201], answers
    assert len({body["workload_id"] for _, body in answers}) == 1
    assert counts(database_on) == (1, 1)


@pytest.mark.parametrize("database_on", DATABASES, indirect=True)
def test_two_documents_racing_for_one_request_id_one_wins_the_rest_are_409(database_on):
    """Eight copies each of two different documents under one id: the winner's copies are one 201 and 200s,
    every copy of the other document is 409; only the winner is stored."""
    key = create_key(database_on, Kind.ORGANIZATION, "acme")[1]
    first, second = small_request("acme", "contested"), small_request("acme", "contested", tags={"variant": "b"})
    documents = [first, second] * (CONCURRENT // 2)
    with LiveServer(create_app(ApiSettings(rate_limit="1000/second"))) as server:
        answers = post_all(server.url, key, documents)
    by_document = {0: [], 1: []}
    for index, (status, _) in enumerate(answers):
        by_document[index % 2].append(status)
    winner = 0 if 201 in by_document[0] else 1
    assert sorted(by_document[winner]) == [200] * (CONCURRENT // 2 - 1) + [201], answers
    assert by_document[1 - winner] == [409] * (CONCURRENT // 2), answers
    assert counts(database_on) == (1, 1)
    with database_on.connect() as connection:
        stored = json.loads(connection.execute(select(workloads.c.request_json)).scalar_one())
    assert stored["tags"] == ({}, {"variant": "b"})[winner]
