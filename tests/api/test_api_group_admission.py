"""Submissions admitted together (one transaction) get the answers they would get alone."""

import asyncio

import pytest

from forge_pipeline.api.service import GroupAdmission
from forge_pipeline.assign.pool import load_pool
from forge_pipeline.intake.problems import RequestIdConflict, RequestInvalid
from forge_pipeline.intake.request import validate_request
from forge_pipeline.storage import records
from tests.api.conftest import small_request


@pytest.mark.parametrize("database_on", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_batch_with_a_bad_and_a_conflicting_document_answers_each_caller_alone(database_on):
    """Stored, new, repeated, conflicting and invalid documents of two organizations submitted at once: the
    valid ones are stored, each refusal reaches only its own caller."""
    records.store_requests(database_on, [validate_request(small_request("acme", "stored"))])
    submissions = [
        (small_request("acme", "stored"), "acme"),  # already stored: 200
        (small_request("acme", "new-1"), "acme"),  # 201
        (small_request("acme", "new-1"), "acme"),  # the same again in the batch: 200
        (small_request("acme", "stored", tags={"x": "y"}), "acme"),  # another document under a stored id: 409
        (small_request("acme", "broken", arguments={"scenarios": -1}), "acme"),  # invalid: 422
        (small_request("globex", "new-2"), "globex"),  # another organization, its own transaction: 201
    ]
    admission = GroupAdmission(database_on, load_pool())

    async def submit_all():
        return await asyncio.gather(*(admission.admit(document, organization)
                                      for document, organization in submissions), return_exceptions=True)

    outcomes = asyncio.run(submit_all())
    assert [outcome[1] if isinstance(outcome, tuple) else type(outcome) for outcome in outcomes] == [
        False, True, False, RequestIdConflict, RequestInvalid, True]
    assert outcomes[1][0] == outcomes[2][0]
    assert len(records.list_workload_ids(database_on)) == 3


@pytest.mark.parametrize("database_on", ["sqlite"], indirect=True)
def test_store_requests_looks_up_more_ids_than_one_query_holds(database_on):
    """1,200 requests, half stored before, one of them changed: the change is found past the first lookup
    query's 500 ids and nothing of the batch is stored; without it, exactly the 600 new ones are."""
    documents = [small_request("acme", f"many-{index}") for index in range(1200)]
    records.store_requests(database_on, [validate_request(document) for document in documents[:600]])
    changed = [*documents[:599], small_request("acme", "many-599", tags={"changed": "yes"}), *documents[600:]]
    with pytest.raises(RequestInvalid, match="'many-599' was already used for a different request"):
        records.store_requests(database_on, [validate_request(document) for document in changed])
    assert len(records.list_workload_ids(database_on)) == 600
    outcome = records.store_requests(database_on, [validate_request(document) for document in documents])
    assert [created for _, created in outcome] == [False] * 600 + [True] * 600
    assert len(records.list_workload_ids(database_on)) == 1200
