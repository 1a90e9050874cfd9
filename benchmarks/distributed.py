"""Load run and orchestration overhead (not tests): the embedded default against the local Celery pool.

    python -m benchmarks.distributed embedded [--workloads 1000]
        N small workloads (four primitives in turn) through `forge-pool submit`, `run` and
        `settle` on a fresh embedded home (SQLite, in-process runs), then `ledger verify`
        and the cycle's reconciliation; prints workloads/hour.
    python -m benchmarks.distributed pool [--workloads 40] [--workers 2] [--parallel-runs 2]
        The same on a fresh local pool (PostgreSQL + Celery workers, forge_pipeline.deploy);
        its databases are dropped afterwards.
    python -m benchmarks.distributed overhead [--executor in_process|multiprocess|celery] [--draws N]
        One job, `empty_step -> shard_step -> closing_step`: each step's wall time as the
        orchestrator sees it (from its first event to the next step's first event) beside
        the shard kernel's own compute time, and the work per step that keeps orchestration
        at most 10% of compute.

Run from the repository root with PYTHONPATH=. (the pool's workers import this module for
`overhead --executor celery`). Every number is measured in the run that prints it.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ORCHESTRATION_SHARE_MAX = 0.10
REPOSITORY = Path(__file__).resolve().parents[1]


def small_request(index: int) -> dict:
    """One small workload, four primitives in turn, a fixed seed each: seconds of work, not minutes."""
    base = {"request_id": f"load-{index:05d}", "workspace": "prod", "adapter": "sdk", "profile": "standard@1",
            "replay": {"seed": 1000 + index}}
    kind = index % 4
    if kind == 0:
        return {**base, "organization": "acme", "project": "risk", "primitive": "probabilistic_simulation/portfolio_loss@1",
                "policy": {"shard_size": 2000},
                "arguments": {"scenarios": 4000, "bins": 5, "quantiles": ["0.99"],
                              "obligors": [{"exposure": 1000 + index % 7, "pd": "0.02"}, {"exposure": 500, "pd": "0.1"}]}}
    if kind == 1:
        return {**base, "organization": "hooli", "project": "media", "primitive": "media_transformation/image_filter@1",
                "policy": {"shard_size": 2}, "arguments": {"generate": {"count": 4, "height": 16, "width": 16,
                                                                        "seed": index}}}
    if kind == 2:
        return {**base, "organization": "initech", "project": "graph",
                "primitive": "graph_propagation/personalized_pagerank@1", "policy": {"shard_size": 2},
                "arguments": {"generate": {"kind": "rmat", "nodes": 128, "edges": 512, "seed": index},
                              "sources": [0, 1], "iterations": 5, "damping": {"numerator": 85, "denominator": 100},
                              "top_k": 3}}
    return {**base, "organization": "stark", "project": "finance", "profile": "economy@1",
            "primitive": "aggregation/grouped_sum@1", "policy": {"shard_size": 5000},
            "arguments": {"generate": {"rows": 10000, "keys": 20, "value_max": 1000, "seed": index}}}


def write_requests(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"load-{index:05d}.yaml"
        path.write_text(yaml.safe_dump(small_request(index), sort_keys=False))
        paths.append(str(path))
    return paths


def check_cycle(engine, cycle_key: str, workload_ids: list[str]) -> dict:
    """Ledger verify, reconciliation and statement totals of the cycle; raises when anything is off."""
    from forge_pipeline.ledger.ledger import verify_chain
    from forge_pipeline.settle import tables
    from forge_pipeline.settle.settlement import cycle_entries
    from forge_pipeline.status import workload_status

    verified = verify_chain(engine)
    entries = cycle_entries(engine, cycle_key)
    reconciliation = tables.cycle_reconciliation(entries).collect()
    statement = tables.credit_statement(entries).collect()
    statuses = [workload_status(engine, workload_id) for workload_id in workload_ids]
    finalized = [status for status in statuses if status["state"] == "Finalized"]
    charged = sum(status["charge_ucr"] for status in finalized)
    result = {"ledger_entries": verified.entries_checked, "ledger_intact": verified.ok,
              "finalized": len(finalized), "workloads": len(statuses),
              "balanced": bool(reconciliation["balanced"].all()),
              "statement_charge_ucr": int(statement["charge_ucr"].sum()), "usage_charge_ucr": charged,
              "statement_workloads": int(statement["workloads"].sum())}
    if not (verified.ok and result["balanced"] and result["statement_charge_ucr"] == charged
            and result["statement_workloads"] == len(finalized) == len(statuses)):
        raise AssertionError(f"cycle {cycle_key} does not reconcile: {result}")
    return result


def load_embedded(count: int) -> dict:
    """The CLI's own path on a fresh embedded home: submit, run (in-process on SQLite), settle, ledger verify."""
    from forge_pipeline import cli
    from forge_pipeline.deploy.local_pool import cycle_key_of, today
    from forge_pipeline.storage.database import open_engine
    from forge_pipeline.storage.records import list_workload_ids

    with tempfile.TemporaryDirectory() as home:
        os.environ["FORGE_HOME"] = home
        os.environ["DAGSTER_HOME"] = f"{home}/dagster"
        for name in ("FORGE_DATABASE_URL", "FORGE_EXECUTOR", "FORGE_POOL_FILE"):
            os.environ.pop(name, None)
        paths = write_requests(Path(home) / "requests", count)
        chatter = io.StringIO()
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            assert cli.main(["submit", *paths]) == 0
            started = time.perf_counter()
            assert cli.main(["run"]) == 0
            run_s = time.perf_counter() - started
            started = time.perf_counter()
            assert cli.main(["settle", today().isoformat()]) == 0
            settle_s = time.perf_counter() - started
            assert cli.main(["ledger", "verify"]) == 0
        engine = open_engine()
        checked = check_cycle(engine, cycle_key_of(today()), list_workload_ids(engine))
    return {"setting": "embedded (SQLite, in-process runs)", "workloads": count, "run_s": run_s,
            "settle_s": settle_s, "workloads_per_hour": count / run_s * 3600, **checked}


def load_pool(count: int, workers: int, parallel_runs: int) -> dict:
    """The same through a fresh local pool: PostgreSQL storage and ledger, Celery workers."""
    from forge_pipeline.deploy import local_pool
    from forge_pipeline.deploy.settings import WORKER_QUEUES
    from forge_pipeline.storage.database import dispose_engines, open_engine

    prefix = f"forge_load_{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("FORGE_DEVICE", "cpu")
    with tempfile.TemporaryDirectory() as home:
        pool = environment_pool(home, prefix)
        try:
            started = time.perf_counter()
            local_pool.start(pool, workers, list(WORKER_QUEUES), 1)
            start_s = time.perf_counter() - started
            paths = write_requests(Path(home) / "requests", count)
            with contextlib.redirect_stderr(io.StringIO()):
                workload_ids = local_pool.submit_files(pool, paths)
                started = time.perf_counter()
                outcome = local_pool.run_workloads(pool, workload_ids, parallel_runs)
                run_s = time.perf_counter() - started
                started = time.perf_counter()
                cycle_key, settled = local_pool.settle(pool, local_pool.today())
                settle_s = time.perf_counter() - started
            assert settled and all(success for success, _ in outcome.values())
            with local_pool.entered(pool):
                checked = check_cycle(open_engine(), cycle_key, workload_ids)
        finally:
            local_pool.stop(pool)
            dispose_engines()
            drop_databases(pool)
    return {"setting": f"local pool ({workers} Celery workers, {parallel_runs} runs at once, PostgreSQL)",
            "workloads": count, "pool_start_s": start_s, "run_s": run_s, "settle_s": settle_s,
            "workloads_per_hour": count / run_s * 3600, **checked}


def environment_pool(home: str, prefix: str):
    """A local pool in `home` on the server and broker the environment names (defaults: this machine's)."""
    from forge_pipeline.deploy import local_pool

    return local_pool.Pool(home=home, server_url=os.environ.get("FORGE_POOL_POSTGRES", local_pool.DEFAULT_SERVER_URL),
                           database_prefix=prefix,
                           broker=os.environ.get("FORGE_CELERY_BROKER", local_pool.DEFAULT_BROKER))


def drop_databases(pool) -> None:
    from forge_pipeline.storage.database import drop_postgres_database

    for purpose in ("dagster", "ledger"):
        drop_postgres_database(pool.server_url, f"{pool.database_prefix}_{purpose}")


# -- per-step orchestration overhead -------------------------------------------------------

SHARD_DRAWS_ENV = "FORGE_BENCH_SHARD_DRAWS"


def overhead_job():
    """empty_step -> shard_step -> closing_step on FORGE_EXECUTOR's executor (reconstructable for Celery workers)."""
    from dagster import In, Nothing, OpExecutionContext, job, op

    from forge_pipeline.definitions import executor

    @op
    def empty_step() -> None:
        """Does nothing: its wall time is orchestration alone."""

    @op(ins={"after": In(Nothing)})
    def shard_step(context: OpExecutionContext) -> float:
        """One portfolio_loss shard of FORGE_BENCH_SHARD_DRAWS draws on NumPy; returns its kernel seconds."""
        from forge_pipeline.execute.backend import NUMPY_BACKEND
        from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss

        primitive = PortfolioLoss()
        arguments = primitive.benchmark_arguments(int(os.environ[SHARD_DRAWS_ENV]))
        started = time.perf_counter()
        primitive.execute_shard(arguments, 7, 0, arguments["scenarios"], NUMPY_BACKEND)
        compute_s = time.perf_counter() - started
        context.add_output_metadata({"compute_s": compute_s})
        return compute_s

    @op
    def closing_step(compute_s: float) -> None:
        """Marks when the orchestrator has taken shard_step's result."""

    @job(executor_def=executor())
    def step_overhead():
        closing_step(shard_step(after=empty_step()))

    return step_overhead


def step_intervals(instance, run_id: str) -> dict[str, float]:
    """Seconds from each step's first event to the next step's first event (the last: to the run's end)."""
    from dagster import DagsterEventType

    first: dict[str, float] = {}
    end = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.step_key and event.step_key not in first:
            first[event.step_key] = record.timestamp
        if event.event_type == DagsterEventType.RUN_SUCCESS:
            end = record.timestamp
    order = ["empty_step", "shard_step", "closing_step"]
    marks = [first[step] for step in order] + [end]
    return {step: marks[index + 1] - marks[index] for index, step in enumerate(order)}


def measure_overhead(executor_name: str, draws: int, repeats: int) -> dict:
    from dagster import DagsterInstance, execute_job, reconstructable

    os.environ["FORGE_EXECUTOR"] = executor_name
    os.environ[SHARD_DRAWS_ENV] = str(draws)
    samples = []
    with tempfile.TemporaryDirectory() as dagster_home:
        instance = DagsterInstance.get() if executor_name == "celery" else DagsterInstance.local_temp(dagster_home)
        for _ in range(repeats + 1):  # the first run warms imports and worker processes; not counted
            with execute_job(reconstructable(overhead_job), instance) as result:
                assert result.success
                samples.append((step_intervals(instance, result.run_id), result.output_for_node("shard_step")))
    samples = samples[1:]
    empty_s = sorted(intervals["empty_step"] for intervals, _ in samples)[len(samples) // 2]
    shard_s = sorted(intervals["shard_step"] for intervals, _ in samples)[len(samples) // 2]
    compute_s = sorted(compute for _, compute in samples)[len(samples) // 2]
    rate = draws / compute_s
    return {"executor": executor_name, "draws_per_step": draws, "repeats": repeats,
            "empty_step_s": empty_s, "shard_step_s": shard_s, "shard_compute_s": compute_s,
            "shard_step_overhead_s": shard_s - compute_s, "draws_per_s": rate,
            "draws_per_step_for_10_percent": empty_s / ORCHESTRATION_SHARE_MAX * rate}


def overhead_on_pool(draws: int, repeats: int) -> dict:
    from forge_pipeline.deploy import local_pool
    from forge_pipeline.deploy.settings import WORKER_QUEUES

    prefix = f"forge_overhead_{uuid.uuid4().hex[:8]}"
    # The workers reconstruct overhead_job from this module: they need the repository on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    os.environ[SHARD_DRAWS_ENV] = str(draws)
    with tempfile.TemporaryDirectory() as home:
        pool = environment_pool(home, prefix)
        try:
            local_pool.start(pool, 2, list(WORKER_QUEUES), 1)
            with local_pool.entered(pool):
                return measure_overhead("celery", draws, repeats)
        finally:
            local_pool.stop(pool)
            drop_databases(pool)


def main(argv: list[str] | None = None) -> int:
    root = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    actions = root.add_subparsers(dest="action", required=True)
    embedded = actions.add_parser("embedded")
    embedded.add_argument("--workloads", type=int, default=1000)
    pool = actions.add_parser("pool")
    pool.add_argument("--workloads", type=int, default=40)
    pool.add_argument("--workers", type=int, default=2)
    pool.add_argument("--parallel-runs", type=int, default=2)
    overhead = actions.add_parser("overhead")
    overhead.add_argument("--executor", choices=("in_process", "multiprocess", "celery"), default="in_process")
    overhead.add_argument("--draws", type=int, default=20_000_000, help="draws in the shard step (default 2e7)")
    overhead.add_argument("--repeats", type=int, default=3)
    arguments = root.parse_args(argv)
    if arguments.action == "embedded":
        result = load_embedded(arguments.workloads)
    elif arguments.action == "pool":
        result = load_pool(arguments.workloads, arguments.workers, arguments.parallel_runs)
    elif arguments.executor == "celery":
        result = overhead_on_pool(arguments.draws, arguments.repeats)
    else:
        result = measure_overhead(arguments.executor, arguments.draws, arguments.repeats)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
