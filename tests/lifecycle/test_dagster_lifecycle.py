import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, build_sensor_context, materialize

from forge_pipeline.cli import main
from forge_pipeline.definitions import defs, resources
from forge_pipeline.execute.backend import cpu_backend
from forge_pipeline.intake.request import validate_request
from forge_pipeline.orchestration.intake import workload_intake_sensor
from forge_pipeline.orchestration.resources import ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import attempts_of, load_workload, store_request, usage_record_of, \
    workload_events_of
from tests.lifecycle.requests import request

ROOT = Path(__file__).resolve().parents[2]


def submit_and_materialize(document: dict, instance: DagsterInstance):
    engine = open_engine()
    workload_id, _ = store_request(engine, validate_request(document))
    instance.add_dynamic_partitions(workload_partitions.name, [workload_id])
    result = materialize(WORKLOAD_ASSETS, partition_key=workload_id, instance=instance, resources=resources(),
                         raise_on_error=False)
    return workload_id, result


def test_lifecycle_materializes_to_finalized_with_evidence_and_usage(forge_home):
    """Through Dagster: Finalized, every state event in order, attempts recorded, bundle on disk, usage record."""
    instance = DagsterInstance.ephemeral()
    workload_id, result = submit_and_materialize(request(), instance)
    assert result.success
    engine = open_engine()
    assert [e["to_state"] for e in workload_events_of(engine, workload_id)] == [
        "Pending", "Planned", "Running", "Verifying", "Aggregating", "Finalized"]
    attempts = attempts_of(engine, workload_id)
    assert {a["shard_index"] for a in attempts} == set(range(5))
    assert all(a["backend"] == cpu_backend().name and a["digest"] and a["work_units"] == 400 * 3 for a in attempts
               if a["agent_id"] != "hub")
    usage = usage_record_of(engine, workload_id)
    assert usage["work_units"] == 2000 * 3
    assert sum(usage["verified_work_units_by_provider"].values()) == 6000
    assert usage["evidence_path"] == f"evidence/{workload_id}"  # relative to the artifact store
    manifest = json.loads((forge_home / "artifacts" / usage["evidence_path"] / "manifest.json").read_text())
    assert manifest["output_digest"] == usage["output_digest"] and len(manifest["shards"]) == 5
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == ["evidence_bundle_intact"] and checks[0].passed
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == {"workload_request", "execution_plan", "shard_executions", "verification_report",
                            "evidence_bundle", "usage_record"}


def test_shard_size_and_rerun_do_not_change_the_output_digest(forge_home):
    """Three shard sizes, and a second run of the same request, give one output digest through Dagster."""
    instance = DagsterInstance.ephemeral()
    digests = []
    for index, shard_size in enumerate([2000, 333, 128, 333]):
        workload_id, result = submit_and_materialize(
            request(request_id=f"size-{index}", policy={"shard_size": shard_size}), instance)
        assert result.success
        digests.append(usage_record_of(open_engine(), workload_id)["output_digest"])
    assert len(set(digests)) == 1


def test_replay_sample_rejects_a_corrupting_agent_and_output_stays_exact(forge_home, tmp_path, monkeypatch):
    """A corrupt Agent's sampled shards are rejected, recomputed by the hub, and the digest is the honest one."""
    honest_id, _ = submit_and_materialize(request(request_id="honest"), DagsterInstance.ephemeral())
    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(yaml.safe_dump({"providers": [
        {"id": "liar", "agents": [{"id": "liar-1", "hardware": "cpu", "fault": {"kind": "corrupt", "rate": 1}}]}]}))
    monkeypatch.setenv("FORGE_POOL_FILE", str(pool_file))
    workload_id, result = submit_and_materialize(
        request(request_id="verified", policy={"verification": "replay_sample", "sample_rate": "1"}),
        DagsterInstance.ephemeral())
    assert result.success
    engine = open_engine()
    usage = usage_record_of(engine, workload_id)
    assert usage["output_digest"] == usage_record_of(engine, honest_id)["output_digest"]
    assert usage["verified_work_units_by_provider"] == {"platform": 6000}
    verdicts = {(a["agent_id"], a["verdict"]) for a in attempts_of(engine, workload_id)}
    assert verdicts == {("liar-1", "rejected"), ("hub", "verified")}


def test_a_pool_that_cannot_run_the_request_fails_the_workload_with_a_reason(forge_home, tmp_path, monkeypatch):
    """execution_class gpu on a machine without a device: Failed, with the reason, nothing billable."""
    from forge_pipeline.execute.backend import cuda_device_visible

    if cuda_device_visible():
        pytest.skip("a CUDA device is visible here, so a gpu workload can run")
    workload_id, result = submit_and_materialize(request(policy={"execution_class": "gpu"}),
                                                 DagsterInstance.ephemeral())
    workload = load_workload(open_engine(), workload_id)
    assert workload["state"] == "Failed"
    assert "no Agent" in workload["state_reason"] and "gpu" in workload["state_reason"]
    assert usage_record_of(open_engine(), workload_id) is None


def test_dedicated_gpu_batches_are_planned_without_a_local_device_and_retried_here(forge_home, tmp_path,
                                                                                  monkeypatch):
    """FORGE_GPU_BATCHES=dedicated: planning on a machine with no GPU still gives GPU Agents batches, on
    steps queued for the gpu workers. Here, a machine with no device, such a batch crashes; the collect
    step retries it on the hardware it has, the output is the one a CPU-only plan gives, and the GPU
    Agent is paid nothing. With the default (local) the GPU Agent gets no batch at all."""
    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(yaml.safe_dump({"providers": [
        {"id": "gpu-co", "agents": [{"id": "gpu-1", "hardware": "gpu", "capacity": 4}]},
        {"id": "cpu-co", "agents": [{"id": "cpu-1", "hardware": "cpu"}]}]}))
    monkeypatch.setenv("FORGE_POOL_FILE", str(pool_file))
    monkeypatch.setenv("FORGE_DEVICE", "cpu")  # this process computes on no GPU, even where one exists
    local_id, local = submit_and_materialize(request(request_id="local"), DagsterInstance.ephemeral())
    monkeypatch.setenv("FORGE_GPU_BATCHES", "dedicated")
    dedicated_id, dedicated = submit_and_materialize(request(request_id="dedicated"), DagsterInstance.ephemeral())
    assert local.success and dedicated.success

    def batch_steps(result) -> set[str]:
        return {event.step_key.split("[")[0] for event in result.all_events
                if event.event_type_value == "STEP_SUCCESS" and "_batch[" in event.step_key}

    assert batch_steps(local) == {"shard_executions.execute_cpu_batch"}
    assert batch_steps(dedicated) == {"shard_executions.execute_cpu_batch", "shard_executions.execute_gpu_batch"}
    engine = open_engine()
    gpu_attempts = [a for a in attempts_of(engine, dedicated_id) if a["agent_id"] == "gpu-1"]
    assert gpu_attempts and all(a["status"] == "crashed" and a["verdict"] == "failed" for a in gpu_attempts)
    retried = {a["shard_index"] for a in attempts_of(engine, dedicated_id) if a["origin"] == "retry"}
    assert retried == {a["shard_index"] for a in gpu_attempts}
    usage = usage_record_of(engine, dedicated_id)
    assert usage["output_digest"] == usage_record_of(engine, local_id)["output_digest"]
    assert usage["verified_work_units_by_provider"] == {"cpu-co": 6000}


def test_sensor_adds_new_pending_workloads_as_partitions_with_one_run_per_batch(forge_home, monkeypatch):
    """The intake sensor adds new Pending workloads as partitions, once, and requests one run per batch
    of at most FORGE_BATCH_SIZE consecutive partitions (range tags from the first to the last)."""
    monkeypatch.setenv("FORGE_BATCH_SIZE", "2")
    engine = open_engine()
    ids = [store_request(engine, validate_request(request(request_id=f"s-{i}")))[0] for i in range(3)]
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance, resources={"database": ForgeDatabaseResource()})
    result = workload_intake_sensor(context)
    assert [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in result.run_requests] == [(ids[0], ids[1]), (ids[2], ids[2])]
    assert result.dynamic_partitions_requests[0].partition_keys == ids
    instance.add_dynamic_partitions(workload_partitions.name, ids)
    assert workload_intake_sensor(build_sensor_context(instance=instance, resources={
        "database": ForgeDatabaseResource()})).run_requests == []


def test_launchpad_submit_job_validates_and_stores(forge_home):
    """The UI's submit job stores a valid request and fails an invalid one with field paths, storing nothing."""
    job = defs.resolve_job_def("submit_request")
    config = {"ops": {"submit_workload_request": {"config": {"document": yaml.safe_dump(request())}}}}
    assert job.execute_in_process(run_config=config, instance=DagsterInstance.ephemeral()).success
    bad = {"ops": {"submit_workload_request": {"config": {"document": json.dumps(
        request(request_id="bad", arguments={"bins": -1}))}}}}
    failed = job.execute_in_process(run_config=bad, instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert "arguments.bins: must be >= 1" in failure
    from forge_pipeline.storage.records import list_workload_ids
    assert len(list_workload_ids(open_engine())) == 1


def test_cli_submit_run_status_json(forge_home, tmp_path, capsys):
    """submit prints only the id, run finalizes through Dagster, status --json has the contract's fields."""
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request()))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    assert workload_id.startswith("wl_") and "\n" not in workload_id
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["status", workload_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "Finalized" and status["primitive"] == request()["primitive"]
    assert status["output"]["scenarios"] == 2000 and len(status["output_digest"]) == 64
    assert {"evidence_digest", "work_units", "charge_ucr"} <= status.keys()
    assert main(["status", "--json"]) == 0
    assert [s["workload_id"] for s in json.loads(capsys.readouterr().out)] == [workload_id]
    assert main(["status", "wl_nope"]) == 2


def test_definitions_validate(forge_home):
    """`dagster definitions validate -w workspace.yaml` accepts the code location."""
    completed = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                                "workspace.yaml"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                               env={**os.environ})
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dagster_dev_serves_the_asset_graph(forge_home):
    """`dagster dev -w workspace.yaml` starts and its GraphQL API lists the lifecycle assets."""
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-p",
                                str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ}, start_new_session=True)
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    try:
        deadline, keys = time.monotonic() + 120, set()
        while time.monotonic() < deadline and "usage_record" not in keys:
            time.sleep(2)
            try:
                reply = urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"}),
                    timeout=10)
                keys = {node["assetKey"]["path"][-1] for node in json.load(reply)["data"]["assetNodes"]}
            except (OSError, KeyError, TypeError):
                continue
        assert {"workload_request", "execution_plan", "shard_executions", "usage_record"} <= keys
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a slow shutdown is not what this test is about: end it
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
