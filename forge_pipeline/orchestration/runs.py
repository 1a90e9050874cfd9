"""Launching lifecycle runs through Dagster from the command line, on the instance under FORGE_HOME,
and telling whether the run that holds a workload's claim is still alive.

Runs go to the same Dagster instance the UI shows (`forge-pool ui`), so an operator
sees command-line runs, their steps and their asset materializations there.
"""

import multiprocessing
import os
import socket
from collections.abc import Callable

from dagster import DagsterInstance, DagsterRun
from filelock import FileLock

from forge_pipeline.home import dagster_home
from forge_pipeline.settings import batch_size

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Lifecycle runs from the command line: the command prints each workload's state and reason,
# so Dagster's own step-failure logs (with tracebacks) stay in the run's event log, for the UI.
LIFECYCLE_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# The process that drives a run (executes its steps or orchestrates them), set on the run
# by whoever starts it: how a later run tells a crashed driver from a live one.
HOST_TAG, PID_TAG = "forge/host", "forge/pid"
# A run with these tags covers that range of partitions; with BackfillPolicy.single_run() its
# assets see every key in context.partition_keys (how Dagster launches single-run backfills).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
BATCH_TAG = "forge/workloads"  # how many workloads the run carries


class RunInterrupted(Exception):
    """A signal (SIGTERM, SIGINT) ended a lifecycle run: Dagster failed it as interrupted, so
    its workloads in flight are taken over by the next run; no further run was started."""


def forge_instance() -> DagsterInstance:
    """The persistent instance in $DAGSTER_HOME, defaulting to FORGE_HOME/dagster.

    Creating it (dagster.yaml, then Dagster's SQLite schemas) is serialized by a file lock
    in that folder: concurrent first commands on a fresh home would race in the schema
    creation."""
    with FileLock(dagster_home() / ".instance.lock"):
        return DagsterInstance.get()


def driver_tags() -> dict[str, str]:
    """Tags naming this process as the driver of a run it starts."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def tag_run_driver(instance: DagsterInstance, run: DagsterRun, executor_name: str) -> None:
    """Name the run's driver from inside one of its steps, when whoever started the run did
    not (a run the daemon launched): with the in-process executor the step runs in the run
    worker; with the multiprocess executor the run worker is the step's parent. Other
    executors' steps run elsewhere, so they name nothing."""
    if PID_TAG in run.tags or executor_name not in ("in_process", "multiprocess"):
        return
    parent = multiprocessing.parent_process()
    driver = parent.pid if executor_name == "multiprocess" and parent is not None else os.getpid()
    instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(driver)})


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def run_is_dead(instance: DagsterInstance, run: DagsterRun | None) -> bool:
    """The run can no longer finish what it claimed: unknown to this instance, ended (failed,
    canceled, or succeeded without finishing), or unfinished while its driver process on
    this host is gone. Such a run is marked failed, which is what it is. A run whose driver
    is on another host, or that names none, counts as alive until Dagster ends it."""
    if run is None or run.is_finished:
        return True
    if run.tags.get(HOST_TAG) != socket.gethostname() or not run.tags.get(PID_TAG, "").isdigit():
        return False
    if _process_alive(int(run.tags[PID_TAG])):
        return False
    instance.report_run_failed(run)
    return True


def claim_holder_is_dead(instance: DagsterInstance) -> Callable[[str | None], bool]:
    """records.claim's liveness check on this instance; a claim without a run (null) is dead."""
    return lambda run_id: run_id is None or run_is_dead(instance, instance.get_run_by_id(run_id))


def stranded_workloads(engine, instance: DagsterInstance) -> list[str]:
    """Workloads in flight (Planned ... Aggregating) whose claiming run is dead: what a resume finishes."""
    from forge_pipeline.storage.records import claims_in_flight

    holder_is_dead = claim_holder_is_dead(instance)
    return [workload_id for workload_id, holder in claims_in_flight(engine).items() if holder_is_dead(holder)]


def partition_ranges(partition_keys: list[str], workload_ids: list[str], size: int) -> list[list[str]]:
    """The workloads grouped for runs: a run covers a range of consecutive workload partitions
    (in `partition_keys` order, the order Dagster ranges over), at most `size` of them, so a
    run never touches a workload it was not asked to run."""
    position = {key: index for index, key in enumerate(partition_keys)}
    ranges: list[list[str]] = []
    for workload_id in sorted(set(workload_ids), key=position.__getitem__):
        if ranges and len(ranges[-1]) < size and position[ranges[-1][-1]] + 1 == position[workload_id]:
            ranges[-1].append(workload_id)
        else:
            ranges.append([workload_id])
    return ranges


def range_tags(workload_ids: list[str]) -> dict[str, str]:
    """Run tags that make a lifecycle run cover the partition range from the first workload to the last."""
    return {ASSET_PARTITION_RANGE_START_TAG: workload_ids[0], ASSET_PARTITION_RANGE_END_TAG: workload_ids[-1]}


def run_lifecycles(workload_ids: list[str], instance: DagsterInstance,
                   progress: Callable[[str, bool, str], None]) -> dict[str, bool]:
    """Run the lifecycle of the workloads in batches (runs over partition ranges of at most
    FORGE_BATCH_SIZE workloads), adding the partitions they lack; returns, per workload,
    whether it is Finalized. Raises RunInterrupted when a signal ended a run."""
    from forge_pipeline.definitions import defs
    from forge_pipeline.orchestration.workload_assets import workload_partitions
    from forge_pipeline.states import State
    from forge_pipeline.storage.database import open_engine
    from forge_pipeline.storage.records import load_workload

    job, engine = defs.resolve_job_def("workload_lifecycle"), open_engine()
    known = instance.get_dynamic_partitions(workload_partitions.name)
    new = [workload_id for workload_id in dict.fromkeys(workload_ids) if workload_id not in set(known)]
    if new:
        instance.add_dynamic_partitions(workload_partitions.name, new)
    outcome = {}
    for batch in partition_ranges([*known, *new], workload_ids, batch_size()):
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=LIFECYCLE_RUN_CONFIG,
                                        tags={**range_tags(batch), BATCH_TAG: str(len(batch)), **driver_tags()})
        for workload_id in batch:
            outcome[workload_id] = load_workload(engine, workload_id)["state"] == State.FINALIZED.value
            progress(workload_id, outcome[workload_id], result.run_id)
        if not result.success and _interrupted(result):
            raise RunInterrupted(result.run_id)
    return outcome


def _interrupted(result) -> bool:
    return any(event.step_failure_data.error is not None
               and event.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
               for event in result.get_step_failure_events())
