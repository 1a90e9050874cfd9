"""Batched lifecycle runs: one Dagster run carries many workloads, each keeps its own partition,
materializations and metadata, and one failing workload does not fail the others."""

from collections import Counter

from dagster import DagsterEventType, DagsterInstance, build_sensor_context

from forge_pipeline.definitions import defs
from forge_pipeline.intake.request import validate_request
from forge_pipeline.orchestration.intake import workload_intake_sensor
from forge_pipeline.orchestration.resources import ForgeDatabaseResource
from forge_pipeline.orchestration.runs import partition_ranges, run_lifecycles
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import load_workload, store_request, usage_record_of
from tests.lifecycle.requests import request

ASSET_NAMES = {asset.key.to_user_string() for asset in WORKLOAD_ASSETS}


def test_a_batch_runs_in_one_run_with_one_materialization_per_workload_and_asset(forge_home):
    """Four workloads, one over budget: one run; three Finalized, the fourth Failed with its reason;
    every asset materialized once per workload partition, with that workload's own metadata."""
    engine = open_engine()
    ids = [store_request(engine, validate_request(request(request_id=f"b-{index}", arguments={
        "scenarios": 1000 + index})))[0] for index in range(3)]
    over_budget = store_request(engine, validate_request(request(request_id="b-poor",
                                                                 policy={"max_credits_ucr": 1})))[0]
    instance = DagsterInstance.ephemeral()
    runs = []
    outcome = run_lifecycles([*ids, over_budget], instance, lambda workload_id, success, run_id: runs.append(run_id))
    assert outcome == {**dict.fromkeys(ids, True), over_budget: False}
    assert len(set(runs)) == 1
    failed = load_workload(engine, over_budget)
    assert failed["state"] == "Failed" and "budget" in failed["state_reason"].lower()
    assert usage_record_of(engine, over_budget) is None

    events = instance.all_logs(runs[0], of_type=DagsterEventType.ASSET_MATERIALIZATION)
    materializations = [event.dagster_event.event_specific_data.materialization for event in events]
    counted = Counter((m.asset_key.to_user_string(), m.partition) for m in materializations)
    assert counted == Counter({(name, key): 1 for name in ASSET_NAMES for key in [*ids, over_budget]})
    by_partition = {(m.asset_key.to_user_string(), m.partition): m.metadata for m in materializations}
    for workload_id in ids:
        assert by_partition[("usage_record", workload_id)]["output_digest"].value == \
            usage_record_of(engine, workload_id)["output_digest"]
        assert by_partition[("workload_request", workload_id)]["seed"].value == str(load_workload(engine, workload_id)[
            "seed"])
    assert "budget" in by_partition[("execution_plan", over_budget)]["failed"].value.lower()


def test_the_sensor_path_finalizes_a_tiny_workload_without_any_command(forge_home):
    """A stored request, one sensor evaluation, the run it requests (executed with the request's tags): Finalized."""
    engine = open_engine()
    workload_id = store_request(engine, validate_request(request(arguments={"scenarios": 100})))[0]
    instance = DagsterInstance.ephemeral()
    evaluation = workload_intake_sensor(build_sensor_context(instance=instance, resources={
        "database": ForgeDatabaseResource()}))
    for partitions_request in evaluation.dynamic_partitions_requests:
        instance.add_dynamic_partitions(partitions_request.partitions_def_name, list(partitions_request.partition_keys))
    [run_request] = evaluation.run_requests
    result = defs.resolve_job_def("workload_lifecycle").execute_in_process(instance=instance, tags=run_request.tags)
    assert result.success and load_workload(engine, workload_id)["state"] == "Finalized"
    assert instance.get_dynamic_partitions(workload_partitions.name) == [workload_id]


def test_a_run_covers_only_consecutive_partitions_and_at_most_the_batch_size():
    """Workloads are grouped into ranges of consecutive partitions, never more than the batch size each."""
    keys = [f"wl_{index}" for index in range(10)]
    assert partition_ranges(keys, ["wl_5", "wl_1", "wl_2", "wl_3", "wl_9", "wl_4"], 3) == [
        ["wl_1", "wl_2", "wl_3"], ["wl_4", "wl_5"], ["wl_9"]]


def test_the_sensor_requests_a_run_for_a_workload_whose_run_is_dead(forge_home):
    """A workload left Running by a run this instance does not know (dead): the sensor requests one
    run over its partition, and once only for that dead claim; that run finalizes it."""
    from forge_pipeline.states import State
    from forge_pipeline.storage.records import claim, transition

    engine = open_engine()
    workload_id = store_request(engine, validate_request(request()))[0]
    claim(engine, workload_id, "run-that-died")
    transition(engine, workload_id, State.RUNNING, "batches")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(workload_partitions.name, [workload_id])
    evaluation = workload_intake_sensor(build_sensor_context(instance=instance, resources={
        "database": ForgeDatabaseResource()}))
    [run_request] = evaluation.run_requests
    assert run_request.run_key.startswith("resume:") and run_request.tags[
        "dagster/asset_partition_range_start"] == workload_id
    result = defs.resolve_job_def("workload_lifecycle").execute_in_process(instance=instance, tags=run_request.tags)
    assert result.success and load_workload(engine, workload_id)["state"] == "Finalized"
