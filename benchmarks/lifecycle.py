"""Kernel, lifecycle, verification and replay benchmarks on portfolio_loss (kernel-only on the backend CPU Agents
use: numba where installed, as the lifecycle does)."""

import os
import tempfile
import time

import numpy as np

from forge_pipeline.execute.backend import NUMPY_BACKEND, cpu_backend
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss
from forge_pipeline.states import State


def restore_forge_home(previous: str | None) -> None:
    """Put FORGE_HOME back as it was before a benchmark pointed it at a temporary home."""
    if previous is None:
        os.environ.pop("FORGE_HOME", None)
    else:
        os.environ["FORGE_HOME"] = previous


PRIMITIVE = PortfolioLoss()


def best_of(repeats: int, function) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_philox(words: int = 1 << 24) -> dict:
    """Our Philox4x32-10 against numpy.random.Philox (4x64) random_raw, same number of 32-bit words."""
    ours = best_of(3, lambda: philox_words(12345, 0, 0, words))
    generator = np.random.Philox(12345)
    theirs = best_of(3, lambda: generator.random_raw(words // 2))  # random_raw yields 64-bit words
    return {"words": words, "ours_words_per_s": words / ours, "numpy_words_per_s": words / theirs,
            "ratio": theirs / ours}


class BenchHome:
    """A throwaway FORGE_HOME with an ephemeral Dagster instance; runs lifecycles and replays through Dagster.

    One small lifecycle and one replay run first, untimed: the modules Dagster imports
    lazily during a process's first run (~0.3 s here) are the process's cost, not a workload's,
    as they are for a daemon or worker that runs many workloads. That lifecycle verifies each of
    its 100 shards, so every Agent starts with an established record (at least 10 verified
    shards in a row) and is sampled at the base rate, as in a pool in service; a new Agent is
    sampled at twice the rate (README, verification modes)."""

    def __enter__(self):
        from dagster import DagsterInstance

        self.directory = tempfile.TemporaryDirectory()
        self.previous = os.environ.get("FORGE_HOME")
        os.environ["FORGE_HOME"] = self.directory.name
        self.instance = DagsterInstance.ephemeral()
        warm_up = self.request("warm-up", 1_000_000,
                               {"verification": "replay_sample", "sample_rate": "1", "shard_size": 100})
        self.run("workload_lifecycle", warm_up)
        self.run("replay_workload", warm_up)
        return self

    def __exit__(self, *exc):
        restore_forge_home(self.previous)
        self.directory.cleanup()

    def request(self, request_id: str, draws: int, policy: dict):
        from forge_pipeline.intake.request import validate_request
        return validate_request({
            "request_id": request_id, "organization": "bench", "project": "p", "workspace": "w", "adapter": "sdk",
            "primitive": PRIMITIVE.qualified_name(), "profile": "standard@1", "policy": policy,
            "replay": {"seed": 1}, "arguments": PRIMITIVE.benchmark_arguments(draws)})

    def run(self, job_name: str, request) -> float:
        from forge_pipeline.definitions import defs
        from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG
        from forge_pipeline.storage.database import open_engine
        from forge_pipeline.storage.records import store_request

        workload_id, _ = store_request(open_engine(), request)
        if workload_id not in self.instance.get_dynamic_partitions("workloads"):
            self.instance.add_dynamic_partitions("workloads", [workload_id])
        started = time.perf_counter()
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=workload_id, instance=self.instance, run_config=QUIET_RUN_CONFIG)
        assert result.success
        return time.perf_counter() - started


def kernel_seconds(request) -> tuple[float, dict]:
    from forge_pipeline.plan.planning import build_plan
    plan = build_plan(request.document, 1)
    arguments = request.document["arguments"]
    backend = cpu_backend()  # what the lifecycle's CPU Agents compute with, so the ratio is orchestration alone
    PRIMITIVE.execute_shard(arguments, 1, 0, 1, backend)  # numba compiles (or loads its cache) once per process
    started = time.perf_counter()
    for shard in plan["shards"]:
        PRIMITIVE.execute_shard(arguments, 1, shard["start"], shard["stop"], backend)
    return time.perf_counter() - started, plan


def bench_portfolio_kernel(draws: int = 20_000_000) -> dict:
    arguments = PRIMITIVE.benchmark_arguments(draws)
    scenarios = arguments["scenarios"]
    seconds = best_of(2, lambda: PRIMITIVE.execute_shard(arguments, 7, 0, scenarios, NUMPY_BACKEND))
    units = PRIMITIVE.work_units(arguments, 0, scenarios)
    return {"draws": units, "seconds": seconds, "draws_per_s": units / seconds}


def bench_lifecycle(draws: int = 100_000_000, verification: str = "none") -> dict:
    """Lifecycle wall time through Dagster (in-process run) over kernel-only time for the same shards."""
    with BenchHome() as home:
        request = home.request(f"bench-{verification}", draws, {"verification": verification})
        kernel_s, plan = kernel_seconds(request)
        lifecycle_s = home.run("workload_lifecycle", request)
    return {"draws": plan["work_units"], "shards": len(plan["shards"]), "verification": verification,
            "kernel_s": kernel_s, "lifecycle_s": lifecycle_s, "ratio": lifecycle_s / kernel_s}


MODES = {"none": {"verification": "none"},
         "spot": {"verification": "spot", "sample_rate": "0.1"},
         "replay_sample": {"verification": "replay_sample", "sample_rate": "0.1"},
         "multi_node": {"verification": "multi_node", "replicas": 2},
         "aggregation_check": {"verification": "aggregation_check"}}


VERIFICATION_SHARDS = 40  # enough that a 10% sample is 10% of the work, not one shard of a few


def bench_verification(draws: int) -> dict:
    """Lifecycle wall time per verification mode as a ratio to mode none, and replay time over the
    original run, all on the same workload size (VERIFICATION_SHARDS shards) in one home."""
    shard_size = max(1, PRIMITIVE.benchmark_arguments(draws)["scenarios"] // VERIFICATION_SHARDS)
    policies = {mode: {**policy, "shard_size": shard_size} for mode, policy in MODES.items()}
    with BenchHome() as home:
        seconds = {mode: home.run("workload_lifecycle", home.request(f"mode-{mode}", draws, policy))
                   for mode, policy in policies.items()}
        replay_s = home.run("replay_workload", home.request("mode-none", draws, policies["none"]))
    return {"draws": draws, "seconds": seconds, "ratios": {mode: s / seconds["none"] for mode, s in seconds.items()},
            "replay_s": replay_s, "replay_ratio": replay_s / seconds["none"]}


SMALL_DRAWS = 200_000  # a small workload: a few milliseconds of kernel time


def small_requests(count: int) -> list:
    from forge_pipeline.intake.request import validate_request
    return [validate_request({
        "request_id": f"small-{index}", "organization": "bench", "project": "p", "workspace": "w", "adapter": "sdk",
        "primitive": PRIMITIVE.qualified_name(), "profile": "standard@1", "replay": {"seed": index + 1},
        "arguments": PRIMITIVE.benchmark_arguments(SMALL_DRAWS)}) for index in range(count)]


def bench_small_workloads(count: int = 200) -> dict:
    """The orchestration factor on the embedded default: wall time of `forge-pool run` (a process of
    its own, imports included, FORGE_BATCH_SIZE default) finalizing `count` small workloads, over the
    same workloads through the core lifecycle functions without Dagster, in this process."""
    import subprocess
    import sys
    from pathlib import Path

    from forge_pipeline.assign.pool import load_pool
    from forge_pipeline.lifecycle import run_lifecycle_inline
    from forge_pipeline.storage.database import artifacts_root, dispose_engines, open_engine
    from forge_pipeline.storage.records import list_workload_ids, store_requests

    previous = os.environ.get("FORGE_HOME")
    seconds = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for path in ("core", "dagster"):
                os.environ["FORGE_HOME"] = os.path.join(directory, path)
                engine = open_engine()
                store_requests(engine, small_requests(count))
                workload_ids = list_workload_ids(engine)
                started = time.perf_counter()
                if path == "core":
                    pool = load_pool()
                    for workload_id in workload_ids:
                        run_lifecycle_inline(engine, workload_id, pool, False, artifacts_root())
                else:
                    environment = {**os.environ, "DAGSTER_HOME": os.path.join(directory, path, "dagster")}
                    subprocess.run([str(Path(sys.executable).parent / "forge-pool"), "run"], env=environment,
                                   check=True, capture_output=True)
                seconds[path] = time.perf_counter() - started
                assert set(list_workload_ids(engine, State.FINALIZED)) == set(workload_ids), path
                dispose_engines()
    finally:
        restore_forge_home(previous)
    return {"workloads": count, "core_s": seconds["core"], "forge_pool_run_s": seconds["dagster"],
            "factor": seconds["dagster"] / seconds["core"], "per_hour": count / seconds["dagster"] * 3600}


def bench_sensor_at_scale(partitions: int = 100_000) -> dict:
    """One intake-sensor evaluation (and Dagster's listing of the workload partitions it does) on a
    persistent SQLite instance that already holds `partitions` workload partitions, with one new
    Pending workload to batch: what every tick costs as the partition set grows."""
    from dagster import DagsterInstance, build_sensor_context

    from forge_pipeline.orchestration.intake import workload_intake_sensor
    from forge_pipeline.orchestration.resources import ForgeDatabaseResource
    from forge_pipeline.orchestration.workload_assets import workload_partitions
    from forge_pipeline.storage.database import dispose_engines, open_engine
    from forge_pipeline.storage.records import store_requests

    previous = os.environ.get("FORGE_HOME")
    try:
        with tempfile.TemporaryDirectory() as directory:
            os.environ["FORGE_HOME"] = directory
            store_requests(open_engine(), small_requests(1))
            os.makedirs(os.path.join(directory, "dagster"))
            with DagsterInstance.local_temp(os.path.join(directory, "dagster")) as instance:
                keys = [f"wl_{index:020x}" for index in range(partitions)]
                for start in range(0, partitions, 10_000):
                    instance.add_dynamic_partitions(workload_partitions.name, keys[start:start + 10_000])
                started = time.perf_counter()
                listed = len(instance.get_dynamic_partitions(workload_partitions.name))
                listing_s = time.perf_counter() - started
                context = build_sensor_context(instance=instance, resources={"database": ForgeDatabaseResource()})
                started = time.perf_counter()
                result = workload_intake_sensor(context)
                tick_s = time.perf_counter() - started
            dispose_engines()
    finally:
        restore_forge_home(previous)
    assert listed == partitions and len(result.run_requests) == 1
    return {"partitions": partitions, "listing_s": listing_s, "sensor_tick_s": tick_s}


def bench_sensor_latency(workloads: int = 3, timeout_s: float = 300) -> dict:
    """Launch-to-Finalized from the sensor: `dagster-daemon run` on a fresh home (the intake sensor
    and the default run launcher, as `forge-pool ui` runs them); after one untimed warm-up
    workload (the daemon's own start), each tiny workload's time from stored (Pending) to
    Finalized, one at a time, with no command run for it."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from forge_pipeline.storage.database import dispose_engines, open_engine
    from forge_pipeline.storage.records import load_workload, store_request

    root = Path(__file__).resolve().parents[1]
    previous = os.environ.get("FORGE_HOME")
    latencies = []
    # ignore_cleanup_errors: the run worker of the last run may still be writing its final events
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as directory:
        os.environ["FORGE_HOME"] = directory
        dagster_home = os.path.join(directory, "dagster")
        os.makedirs(dagster_home)
        Path(dagster_home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # as forge_instance writes
        engine = open_engine()
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                  cwd=root, env={**os.environ, "DAGSTER_HOME": dagster_home},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            for request in small_requests(workloads + 1):
                workload_id, _ = store_request(engine, request)
                started = time.perf_counter()
                while load_workload(engine, workload_id)["state"] != State.FINALIZED.value:
                    if time.perf_counter() - started > timeout_s:
                        raise TimeoutError(f"{workload_id} not Finalized {timeout_s} s after it was stored")
                    time.sleep(0.1)
                latencies.append(time.perf_counter() - started)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
            dispose_engines()
            restore_forge_home(previous)
    return {"warm_up_s": latencies[0], "latencies_s": latencies[1:], "worst_s": max(latencies[1:])}
