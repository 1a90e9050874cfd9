"""Shard attempts are recorded once per stage: a Dagster step re-executed after its commit
(a retried collect or verification step, a resumed run) appends nothing, and a
re-execution that produced other attempts is refused before anything is written."""

import pytest

from forge_pipeline import lifecycle
from forge_pipeline.assign.pool import parse_pool
from forge_pipeline.intake.request import validate_request
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import AttemptsDiffer, attempts_of, store_request
from tests.lifecycle.requests import request
from tests.money.workloads import artifacts

# A crashing Agent forces retries; replay_sample at rate 1 catches the liar, whose shards the hub recomputes.
POOL = parse_pool({"providers": [
    {"id": "honest", "agents": [{"id": "honest-1", "hardware": "cpu"}]},
    {"id": "flaky", "agents": [{"id": "flaky-1", "hardware": "cpu", "fault": {"kind": "crash", "rate": "1"}}]},
    {"id": "liar", "agents": [{"id": "liar-1", "hardware": "cpu", "fault": {"kind": "corrupt", "rate": "1"}}]},
]})


def planned_and_batches(engine) -> tuple[dict, list[list[dict]]]:
    document = request(arguments={"scenarios": 600},
                       policy={"shard_size": 100, "verification": "replay_sample", "sample_rate": "1"})
    workload_id, _ = store_request(engine, validate_request(document))
    planned = lifecycle.plan_workload(engine, lifecycle.admitted_request(engine, workload_id, "run-1"), POOL, False)
    lifecycle.start_execution(engine, planned)
    return planned, [lifecycle.execute_batch(planned, POOL, agent_id) for agent_id in planned["batches"]]


def test_collect_and_verify_executed_twice_record_each_attempt_once(forge_home):
    engine = open_engine()
    planned, batches = planned_and_batches(engine)
    first = lifecycle.collect_attempts(engine, planned, POOL, batches, False)
    recorded = attempts_of(engine, planned["workload_id"])
    assert {row["origin"] for row in recorded} == {"batch", "retry"}  # the crashes were retried
    again = lifecycle.collect_attempts(engine, planned, POOL, list(reversed(batches)), False)
    assert attempts_of(engine, planned["workload_id"]) == recorded
    assert [(a["shard_index"], a["attempt"], a["digest"]) for a in again] == \
        [(a["shard_index"], a["attempt"], a["digest"]) for a in first]

    report = lifecycle.verify_workload(engine, planned, again)
    verified = attempts_of(engine, planned["workload_id"])
    assert sum(row["origin"] == "verification" for row in verified) == len(report["rejected_shards"]) > 0
    lifecycle.verify_workload(engine, planned, again)
    assert attempts_of(engine, planned["workload_id"]) == verified

    evidence = lifecycle.aggregate_workload(engine, planned, report, artifacts())
    usage = lifecycle.finalize_workload(engine, planned, report, evidence)
    paid = usage["verified_work_units_by_provider"]  # counted once: neither liar nor crasher, the hub's recomputation
    assert set(paid) == {"honest", "platform"} and sum(paid.values()) == planned["plan"]["work_units"]


def test_a_reexecution_with_other_attempts_is_refused_and_writes_nothing(forge_home):
    engine = open_engine()
    planned, batches = planned_and_batches(engine)
    lifecycle.collect_attempts(engine, planned, POOL, batches, False)
    recorded = attempts_of(engine, planned["workload_id"])
    honest = next(batch for batch in batches if batch[0]["agent_id"] == "honest-1")
    altered = [[{**honest[0], "digest": "0" * 64}, *honest[1:]]] + [b for b in batches if b is not honest]
    with pytest.raises(AttemptsDiffer, match="differ from the .* already recorded; nothing was written"):
        lifecycle.collect_attempts(engine, planned, POOL, altered, False)
    assert attempts_of(engine, planned["workload_id"]) == recorded
