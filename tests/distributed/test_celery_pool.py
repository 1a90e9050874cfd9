"""The lifecycle and settlement through Celery workers on PostgreSQL give the embedded default's
outputs and money exactly, and survive a worker or an orchestrator killed mid-batch."""

import copy
import os
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from forge_pipeline.deploy import local_pool
from forge_pipeline.intake.request import validate_request
from forge_pipeline.ledger.ledger import verify_chain
from forge_pipeline.settle import tables
from forge_pipeline.settle.settlement import cycle_entries
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import attempts_of, store_request, usage_record_of

pytestmark = pytest.mark.postgres

BASE = {"workspace": "prod", "adapter": "sdk", "profile": "standard@1"}
MIXED_REQUESTS = [
    {**BASE, "request_id": "dist-risk", "organization": "acme", "project": "risk",
     "primitive": "probabilistic_simulation/portfolio_loss@1", "policy": {"shard_size": 5000}, "replay": {"seed": 11},
     "arguments": {"scenarios": 20000, "bins": 5, "quantiles": ["0.99"],
                   "obligors": [{"exposure": 1200, "pd": "0.01"}, {"exposure": 800, "pd": "0.05"},
                                {"exposure": 400, "pd": "0.1"}]}},
    {**BASE, "request_id": "dist-thumbs", "organization": "hooli", "project": "media",
     "primitive": "media_transformation/image_filter@1", "policy": {"shard_size": 4}, "replay": {"seed": 12},
     "arguments": {"generate": {"count": 8, "height": 32, "width": 32, "seed": 42}}},
    {**BASE, "request_id": "dist-graph", "organization": "initech", "project": "recommendations",
     "primitive": "graph_propagation/personalized_pagerank@1", "policy": {"shard_size": 2}, "replay": {"seed": 13},
     "arguments": {"generate": {"kind": "rmat", "nodes": 256, "edges": 2048, "seed": 11}, "sources": [0, 1, 2, 3],
                   "iterations": 10, "damping": {"numerator": 85, "denominator": 100}, "top_k": 5}},
    {**BASE, "request_id": "dist-rollup", "organization": "stark", "project": "finance", "profile": "economy@1",
     "primitive": "aggregation/grouped_sum@1", "policy": {"shard_size": 25000}, "replay": {"seed": 14},
     "arguments": {"generate": {"rows": 50000, "keys": 50, "value_max": 1000, "seed": 9}}},
]
# Batches of a second or more each (with the compiled kernels), so a kill lands inside one;
# the tests check that it did rather than assume it.
HEAVY_REQUEST = {
    **BASE, "request_id": "dist-heavy", "organization": "wayne", "project": "risk",
    "primitive": "probabilistic_simulation/portfolio_loss@1", "policy": {"shard_size": 2_000_000},
    "replay": {"seed": 20261125},
    "arguments": {"scenarios": 60_000_000, "bins": 8, "quantiles": ["0.99"],
                  "obligors": [{"exposure": 1000 + 37 * k, "pd": f"0.0{1 + k % 9}"} for k in range(40)]},
}
KILL_AFTER_START_S = 0.2


def renamed(document: dict, request_id: str) -> dict:
    """The same work under another request id: a new workload with the same outputs and money."""
    return {**copy.deepcopy(document), "request_id": request_id}


ATTEMPT_FIELDS = ("shard_index", "attempt", "status", "digest", "work_units")
# Which Agent gets a shard, and how often it is sampled, follow the Agents' reliability,
# which is the history of the ledger's own attempts; equal only from equal histories.
ATTRIBUTION_FIELDS = ("agent_id", "provider_id", "verdict")


def fingerprint(engine, workload_id: str, attribution: bool = True) -> dict:
    """What must not depend on where the steps ran: outputs, evidence root, attempts, work and money."""
    record = usage_record_of(engine, workload_id)
    fields = ATTEMPT_FIELDS + (ATTRIBUTION_FIELDS if attribution else ())
    attempts = [{key: attempt[key] for key in fields} for attempt in attempts_of(engine, workload_id)]
    return {key: record[key] for key in ("output_digest", "merkle_root", "plan_digest", "work_units", "charge_ucr")} \
        | {"attempts": sorted(attempts, key=lambda attempt: (attempt["shard_index"], attempt["attempt"]))}


def cycle_totals(engine, cycle_key: str, workload_ids: list[str]) -> dict:
    entries = cycle_entries(engine, cycle_key).filter(pl.col("workload_id").is_in(workload_ids))
    return {"statement": tables.credit_statement(entries).collect(),
            "payouts": tables.provider_payouts(entries).collect(),
            "reconciliation": tables.cycle_reconciliation(entries).collect()}


def embedded_run(home, documents: list[dict], monkeypatch, attribution: bool = True) -> dict:
    """The embedded default on the same requests: SQLite, every step in this process."""
    from dagster import DagsterInstance

    from forge_pipeline.definitions import defs
    from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG, run_lifecycles

    with monkeypatch.context() as patch:
        patch.setenv("FORGE_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        patch.delenv("FORGE_DATABASE_URL", raising=False)
        engine = open_engine()
        workload_ids = [store_request(engine, validate_request(document))[0] for document in documents]
        instance = DagsterInstance.ephemeral()
        assert all(run_lifecycles(workload_ids, instance, lambda *_: None).values())
        cycle_key = local_pool.cycle_key_of(local_pool.today())
        assert defs.resolve_job_def("billing_cycle_settlement").execute_in_process(
            partition_key=cycle_key, instance=instance, run_config=QUIET_RUN_CONFIG).success
        return {"workloads": {workload_id: fingerprint(engine, workload_id, attribution)
                              for workload_id in workload_ids},
                "totals": cycle_totals(engine, cycle_key, workload_ids)}


def submit(documents: list[dict]) -> list[str]:
    engine = open_engine()  # the pool's ledger: the pool fixture set FORGE_DATABASE_URL
    return [store_request(engine, validate_request(document))[0] for document in documents]


def step_events(instance, run_id: str) -> list:
    return [record.dagster_event for record in instance.all_logs(run_id) if record.dagster_event]


def celery_worker_of(event) -> str | None:
    """The worker named by dagster-celery's "Executing steps ... in celery worker" engine event."""
    metadata = getattr(event.event_specific_data, "metadata", None) or {}
    worker = metadata.get("Celery worker")
    return worker.value if worker else None


def run_of(instance, workload_id: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        for run in runs:  # a run of that workload alone (the local pool launches one per workload)
            if workload_id in (run.tags.get("dagster/partition"), run.tags.get("forge/workload")):
                return run
        time.sleep(0.1)
    raise AssertionError(f"no run for {workload_id} after {timeout_s} s")


def batches_in_flight(instance, run_id: str, worker_name: str) -> list[str]:
    """Batch steps the worker has started in the run and not yet ended (succeeded or failed)."""
    events = step_events(instance, run_id)
    taken = {event.step_key for event in events if celery_worker_of(event) == worker_name}
    started = {event.step_key for event in events if event.event_type_value == "STEP_START"}
    ended = {event.step_key for event in events if event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")}
    return sorted(key for key in taken & started - ended if "_batch[" in key)


def batch_started(instance, run_id: str, timeout_s: float = 120) -> tuple[str, str]:
    """(step key, worker) of the first batch step a worker has started; waits for its STEP_START."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = step_events(instance, run_id)
        started = {event.step_key for event in events if event.event_type_value == "STEP_START"}
        for event in events:
            worker = celery_worker_of(event)
            if worker and "_batch[" in (event.step_key or "") and event.step_key in started:
                return event.step_key, worker
        time.sleep(0.05)
    raise AssertionError(f"no batch step started in run {run_id} after {timeout_s} s")


@pytest.fixture(scope="module")
def heavy_baseline(tmp_path_factory):
    """The heavy request on the embedded default, once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        return embedded_run(tmp_path_factory.mktemp("embedded-heavy"), [HEAVY_REQUEST], patch, attribution=False)


@pytest.fixture(scope="module")
def mixed_run(pool):
    """The mixed requests through the pool and the cycle settled, first of all on the pool's fresh ledger
    (the module's other tests ask for this fixture, so no Agent history precedes it)."""
    workload_ids = submit(MIXED_REQUESTS)
    outcome = local_pool.run_workloads(pool, workload_ids, parallel_runs=2)
    cycle_key, settled = local_pool.settle(pool, local_pool.today())
    return {"workload_ids": workload_ids, "outcome": outcome, "cycle_key": cycle_key, "settled": settled}


def test_mixed_workloads_through_two_workers_match_the_embedded_run(pool, mixed_run, tmp_path, monkeypatch):
    """Four primitives' lifecycles and the cycle's settlement on two Celery workers over PostgreSQL give the
    embedded run's output digests, Merkle roots, attempts, charges, statement and payouts exactly; batch steps
    went to the `cpu` queue and both workers took steps."""
    from dagster import DagsterInstance

    baseline = embedded_run(tmp_path / "embedded", MIXED_REQUESTS, monkeypatch)
    workload_ids, outcome, cycle_key = mixed_run["workload_ids"], mixed_run["outcome"], mixed_run["cycle_key"]
    assert all(success for success, _ in outcome.values()), outcome
    assert mixed_run["settled"]

    engine = open_engine()
    assert {workload_id: fingerprint(engine, workload_id) for workload_id in workload_ids} == baseline["workloads"]
    totals = cycle_totals(engine, cycle_key, workload_ids)
    for name, frame in baseline["totals"].items():
        assert_frame_equal(totals[name], frame)
    assert totals["reconciliation"]["balanced"].all()
    assert verify_chain(engine).ok

    instance = DagsterInstance.get()
    events = [event for _, run_id in outcome.values() for event in step_events(instance, run_id)]
    submitted = [event.message for event in events if (event.message or "").startswith("Submitting celery task")]
    batch_submissions = [message for message in submitted if "_batch[" in message]
    assert batch_submissions and all(message.endswith('to queue "cpu".') for message in batch_submissions)
    assert all(message.endswith('to queue "dagster".') for message in submitted if "_batch[" not in message)
    assert {celery_worker_of(event).split("@")[0] for event in events if celery_worker_of(event)} == \
        {worker.name for worker in pool.workers}


def test_worker_killed_mid_batch_is_rerun_elsewhere_and_the_killed_attempt_is_never_recorded(pool, mixed_run, heavy_baseline):
    """SIGKILL the worker running a batch: Celery gives the batch to the other worker, the run finalizes with the
    embedded run's digests and money, and the shard attempts are exactly the embedded run's (the killed attempt
    left no record, so it cannot be billed)."""
    from dagster import DagsterInstance

    [workload_id] = submit([renamed(HEAVY_REQUEST, "dist-heavy-worker-kill")])
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(local_pool.run_workloads(pool, [workload_id], 1)))
    runner.start()
    instance = DagsterInstance.get()
    run = run_of(instance, workload_id)
    _, worker_name = batch_started(instance, run.run_id)
    time.sleep(KILL_AFTER_START_S)
    [victim] = [worker for worker in pool.workers if worker_name.startswith(f"{worker.name}@")]
    os.killpg(victim.pid, signal.SIGKILL)
    # The batch the worker had in hand when it died (its events up to the kill are all written).
    killed = batches_in_flight(instance, run.run_id, worker_name)
    assert len(killed) == 1, f"the kill landed between batches of {worker_name}: {killed}"
    [step_key] = killed
    assert attempts_of(open_engine(), workload_id) == []  # a batch's work is in no record until collect
    runner.join(timeout=150)
    assert not runner.is_alive(), "the run did not end after its worker was killed"
    assert outcome[workload_id][0]

    engine = open_engine()
    [expected] = heavy_baseline["workloads"].values()
    assert fingerprint(engine, workload_id, attribution=False) == expected
    events = step_events(instance, run.run_id)
    executions = [celery_worker_of(event) for event in events if event.step_key == step_key and celery_worker_of(event)]
    assert executions[0] == worker_name and len(executions) == 2 and executions[1] != worker_name
    assert [event.event_type_value for event in events if event.step_key == step_key
            and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")] == ["STEP_SUCCESS"]
    assert verify_chain(engine).ok


def test_run_whose_orchestrator_was_killed_mid_batch_resumes_to_the_same_result(pool, mixed_run, heavy_baseline):
    """SIGKILL the process orchestrating a run while a batch executes: `pool resume` re-executes the run from
    where it stopped and the workload finalizes with the embedded run's digests, attempts and charge."""
    from dagster import DagsterInstance, DagsterRunStatus

    [workload_id] = submit([renamed(HEAVY_REQUEST, "dist-heavy-orchestrator-kill")])
    # `forge-pool pool run` from another shell, in the pool's environment (`eval $(forge-pool pool env)`):
    # the autouse fixture gives each test a FORGE_HOME of its own, where no pool is up.
    with open(pool.folder / "orchestrator.log", "ab") as log:
        orchestrator = subprocess.Popen(
            [sys.executable, "-m", "forge_pipeline.deploy.local_pool", "run", workload_id],
            env={**os.environ, **pool.environment()}, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        instance = DagsterInstance.get()
        run = run_of(instance, workload_id)
        batch_started(instance, run.run_id)
        time.sleep(KILL_AFTER_START_S)
    finally:
        os.killpg(orchestrator.pid, signal.SIGKILL)
        orchestrator.wait(timeout=30)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # nobody drives it any more

    success, resumed_run_id = local_pool.resume(pool, run.run_id)
    assert success and resumed_run_id != run.run_id
    rerun = {event.step_key for event in step_events(instance, resumed_run_id) if event.event_type_value == "STEP_START"}
    # Resumed, not started over: planning is not redone (batches the workers finished for the dead
    # orchestrator count as done), and the attempts are recorded once, by the resumed run.
    assert "workload_request" not in rerun and "execution_plan" not in rerun
    assert "shard_executions.collect_shard_attempts" in rerun
    [expected] = heavy_baseline["workloads"].values()
    assert fingerprint(open_engine(), workload_id, attribution=False) == expected
    assert verify_chain(open_engine()).ok
