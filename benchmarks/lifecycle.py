"""Kernel and lifecycle benchmarks for portfolio_loss (issue: the lifecycle on Dagster)."""

import os
import tempfile
import time

import numpy as np

from forge_pipeline.execute.backend import NUMPY_BACKEND
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss


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


def bench_portfolio_kernel(draws: int = 20_000_000) -> dict:
    primitive = PortfolioLoss()
    arguments = primitive.benchmark_arguments(draws)
    scenarios = arguments["scenarios"]
    seconds = best_of(2, lambda: primitive.execute_shard(arguments, 7, 0, scenarios, NUMPY_BACKEND))
    units = primitive.work_units(arguments, 0, scenarios)
    return {"draws": units, "seconds": seconds, "draws_per_s": units / seconds}


def bench_lifecycle(draws: int = 100_000_000, verification: str = "none") -> dict:
    """Lifecycle wall time through Dagster (in-process run) over kernel-only time for the same shards."""
    from dagster import DagsterInstance

    from forge_pipeline.intake.request import validate_request
    from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG
    from forge_pipeline.plan.planning import build_plan
    from forge_pipeline.storage.database import open_engine
    from forge_pipeline.storage.records import store_request

    primitive = PortfolioLoss()
    with tempfile.TemporaryDirectory() as home:
        os.environ["FORGE_HOME"] = home
        request = validate_request({
            "request_id": f"bench-{verification}", "organization": "bench", "project": "p", "workspace": "w",
            "adapter": "sdk", "primitive": primitive.qualified_name(), "profile": "standard@1",
            "policy": {"verification": verification}, "replay": {"seed": 1},
            "arguments": primitive.benchmark_arguments(draws)})
        plan = build_plan(request.document, 1)
        arguments = request.document["arguments"]
        started = time.perf_counter()
        for shard in plan["shards"]:
            primitive.execute_shard(arguments, 1, shard["start"], shard["stop"], NUMPY_BACKEND)
        kernel_seconds = time.perf_counter() - started
        workload_id, _ = store_request(open_engine(), request)
        from forge_pipeline.definitions import defs
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("workloads", [workload_id])
        started = time.perf_counter()
        result = defs.resolve_job_def("workload_lifecycle").execute_in_process(
            partition_key=workload_id, instance=instance, run_config=QUIET_RUN_CONFIG)
        lifecycle_seconds = time.perf_counter() - started
        assert result.success
    return {"draws": plan["work_units"], "shards": len(plan["shards"]), "verification": verification,
            "kernel_s": kernel_seconds, "lifecycle_s": lifecycle_seconds, "ratio": lifecycle_seconds / kernel_seconds}
