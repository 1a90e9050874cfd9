"""Every workload converges: a crashed or killed `forge-pool run` leaves nothing an operator
cannot finish with `forge-pool run` again (or `--resume`), and nothing is posted twice."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select

from forge_pipeline.cli import main
from forge_pipeline.intake.request import validate_request
from forge_pipeline.states import State
from forge_pipeline.storage import records
from forge_pipeline.storage.database import ledger_entries, open_engine
from tests.lifecycle.requests import request

FORGE_POOL = str(Path(sys.executable).parent / "forge-pool")
WORKLOADS = 4
COMPARED = ("output_digest", "merkle_root", "plan_digest", "work_units", "charge_ucr",
            "verified_work_units_by_provider")


def write_requests(folder: Path) -> list[str]:
    paths = []
    for index in range(WORKLOADS):
        path = folder / f"request-{index}.yaml"
        path.write_text(yaml.safe_dump(request(request_id=f"kill-{index}", arguments={"scenarios": 1000 + index},
                                               policy={"shard_size": 200})))
        paths.append(str(path))
    return paths


def forge_pool(home: Path, *arguments: str, settings: dict | None = None, **options) -> subprocess.Popen:
    environment = {**os.environ, "FORGE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **(settings or {})}
    return subprocess.Popen([FORGE_POOL, *arguments], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def finished(process: subprocess.Popen, timeout_s: float = 300) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout_s)
    return process.returncode, stderr


def submitted(home: Path, paths: list[str]) -> list[str]:
    process = forge_pool(home, "submit", *paths)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return stdout.split()


def outcome(home: Path, workload_ids: list[str]) -> dict[str, dict]:
    engine = create_engine(f"sqlite:///{home / 'forge.db'}")
    try:
        result = {}
        for workload_id in workload_ids:
            workload = records.load_workload(engine, workload_id)
            usage = records.usage_record_of(engine, workload_id) or {}
            output = (home / "artifacts" / usage.get("evidence_path", "missing") / "output.json")
            result[workload["request"]["request_id"]] = {
                "state": workload["state"], **{key: usage.get(key) for key in COMPARED},
                "output_file": output.read_text() if output.exists() else None}
        with engine.connect() as connection:
            keys = list(connection.execute(select(ledger_entries.c.idempotency_key)).scalars())
        return result, keys
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_a_run_killed_at_a_random_moment_finishes_on_rerun_with_one_posting_each(tmp_path, seed):
    """SIGKILL of `forge-pool run` at a random moment of a multi-workload run, then a re-run
    (by id for odd seeds, `--resume` then `run` for even ones): every workload Finalized, one
    `workload:` posting each and no duplicate key, ledger verify intact, outputs identical to
    an undisturbed run's."""
    paths = write_requests(tmp_path)
    reference_home, home = tmp_path / "reference", tmp_path / "killed"
    reference_ids = submitted(reference_home, paths)
    started = time.monotonic()
    code, stderr = finished(forge_pool(reference_home, "run"))
    undisturbed_s = time.monotonic() - started
    assert code == 0, stderr
    reference, _ = outcome(reference_home, reference_ids)

    workload_ids = submitted(home, paths)
    victim = forge_pool(home, "run")
    time.sleep(random.Random(seed).uniform(0.3, undisturbed_s))
    victim.send_signal(signal.SIGKILL)
    finished(victim)
    interrupted, _ = outcome(home, workload_ids)
    if seed % 2 == 0:
        code, stderr = finished(forge_pool(home, "run", "--resume"))
        assert code == 0, stderr
    code, stderr = finished(forge_pool(home, "run", *workload_ids))
    assert code == 0, f"states after the kill: {[w['state'] for w in interrupted.values()]}\n{stderr}"
    assert "Traceback" not in stderr

    converged, keys = outcome(home, workload_ids)
    assert converged == reference
    assert all(workload["state"] == "Finalized" for workload in converged.values())
    assert sorted(key.split("#")[0] for key in keys if key.startswith("workload:")) == sorted(
        f"workload:{workload_id}" for workload_id in workload_ids)
    assert len(keys) == len(set(keys))
    verify = forge_pool(home, "ledger", "verify")
    stdout, _ = verify.communicate(timeout=120)
    assert verify.returncode == 0 and "ledger intact" in stdout


def test_a_claim_is_taken_over_only_when_its_run_is_dead(forge_home):
    """A claim held by a live run is refused to others; once that run is dead it is taken over where it stands."""
    engine = open_engine()
    workload_id, _ = records.store_request(engine, validate_request(request()))
    assert records.claim(engine, workload_id, "run-a", lambda holder: False).value == "Planned"
    records.transition(engine, workload_id, State.RUNNING, "batches")
    with pytest.raises(records.AlreadyClaimed, match="another run has its lifecycle"):
        records.claim(engine, workload_id, "run-b", lambda holder: False)
    assert records.claim(engine, workload_id, "run-b", lambda holder: holder == "run-a").value == "Running"
    workload = records.load_workload(engine, workload_id)
    assert workload["claimed_by"] == "run-b" and "from run run-a" in workload["state_reason"]
    with pytest.raises(records.AlreadyClaimed):  # the dead run cannot come back and take it again
        records.claim(engine, workload_id, "run-a", lambda holder: False)


def test_gpu_device_without_a_device_is_refused_before_any_claim(forge_home, tmp_path, monkeypatch, capsys):
    """FORGE_DEVICE=gpu on a machine without a CUDA device: exit 2 with the reason; the workload stays Pending."""
    from forge_pipeline.execute.backend import cuda_device_visible

    if cuda_device_visible():
        pytest.skip("a CUDA device is visible here, so FORGE_DEVICE=gpu can run")
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request()))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    monkeypatch.setenv("FORGE_DEVICE", "gpu")
    assert main(["run", workload_id]) == 2
    assert "FORGE_DEVICE" in capsys.readouterr().err
    workload = records.load_workload(open_engine(), workload_id)
    assert workload["state"] == "Pending" and workload["claimed_by"] is None


def test_four_concurrent_first_commands_on_a_fresh_home_all_succeed(tmp_path):
    """Four `forge-pool submit` + `forge-pool run` pairs started together on a home that does not exist yet."""
    paths = write_requests(tmp_path)
    home = tmp_path / "fresh"
    script = 'set -e; id=$("$0" submit "$1"); "$0" run "$id"'
    processes = [subprocess.Popen(["sh", "-c", script, FORGE_POOL, path], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "FORGE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
                 for path in paths]
    for process in processes:
        code, stderr = finished(process)
        assert code == 0, stderr
    result, _ = outcome(home, records.list_workload_ids(create_engine(f"sqlite:///{home / 'forge.db'}")))
    assert len(result) == WORKLOADS and all(workload["state"] == "Finalized" for workload in result.values())


def test_sigterm_ends_the_run_cleanly_and_starts_no_other(tmp_path):
    """SIGTERM mid-run: exit 1 with a message and no traceback, no further run started (one workload per run
    here, so the runs not started leave their workloads Pending); `--resume` then `run` finish every workload
    with one posting each."""
    paths = write_requests(tmp_path)
    home = tmp_path / "home"
    workload_ids = submitted(home, paths)
    victim = forge_pool(home, "run", settings={"FORGE_BATCH_SIZE": "1"})
    engine = create_engine(f"sqlite:///{home / 'forge.db'}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(
            records.load_workload(engine, workload_id)["state"] == "Pending" for workload_id in workload_ids):
        time.sleep(0.05)
    victim.send_signal(signal.SIGTERM)
    code, stderr = finished(victim)
    assert code == 1 and "Traceback" not in stderr and "stopped by a signal" in stderr, stderr
    assert "Pending" in [records.load_workload(engine, workload_id)["state"] for workload_id in workload_ids]
    code, stderr = finished(forge_pool(home, "run", "--resume"))
    assert code == 0, stderr
    code, stderr = finished(forge_pool(home, "run"))
    assert code == 0, stderr
    result, keys = outcome(home, workload_ids)
    engine.dispose()
    assert all(workload["state"] == "Finalized" for workload in result.values())
    assert len(keys) == len(set(keys))


def test_a_workload_past_its_wall_time_limit_ends_failed_with_the_reason(forge_home):
    """policy.wall_time_limit_s: a workload still unfinished when it runs out ends Failed naming the limit,
    with nothing billable; a limit that is not a positive whole number is refused by its field path."""
    from forge_pipeline import lifecycle
    from forge_pipeline.assign.pool import load_pool
    from forge_pipeline.intake.problems import RequestInvalid

    with pytest.raises(RequestInvalid, match="policy.wall_time_limit_s"):
        validate_request(request(policy={"wall_time_limit_s": 0}))
    engine = open_engine()
    workload_id, _ = records.store_request(engine, validate_request(request(policy={"wall_time_limit_s": 1})))
    planned = lifecycle.plan_workload(engine, lifecycle.admitted_request(engine, workload_id, "run-1"), load_pool(),
                                      False)
    time.sleep(1.2)
    with pytest.raises(lifecycle.WorkloadFailed, match="wall-time limit of 1 s"):
        lifecycle.start_execution(engine, planned)
    workload = records.load_workload(engine, workload_id)
    assert workload["state"] == "Failed" and "wall-time limit" in workload["state_reason"]
    assert records.usage_record_of(engine, workload_id) is None
