"""Launching lifecycle runs through Dagster from the command line, on the instance under FORGE_HOME.

Runs go to the same Dagster instance the UI shows (`forge-pool ui`), so an operator
sees command-line runs, their steps and their asset materializations there.
"""

from collections.abc import Callable

from dagster import DagsterInstance

from forge_pipeline.storage.database import dagster_home, open_engine
from forge_pipeline.storage.records import load_workload

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def forge_instance() -> DagsterInstance:
    """The persistent instance in $DAGSTER_HOME, defaulting to FORGE_HOME/dagster."""
    dagster_home()
    return DagsterInstance.get()


def run_lifecycles(workload_ids: list[str], instance: DagsterInstance,
                   progress: Callable[[str, bool, str], None]) -> dict[str, bool]:
    """Materialize the lifecycle for each workload partition; returns success per workload."""
    from forge_pipeline.definitions import defs
    from forge_pipeline.orchestration.metadata import workload_run_tags
    from forge_pipeline.orchestration.workload_assets import workload_partitions

    job = defs.resolve_job_def("workload_lifecycle")
    engine = open_engine()
    known = set(instance.get_dynamic_partitions(workload_partitions.name))
    new = [workload_id for workload_id in workload_ids if workload_id not in known]
    if new:
        instance.add_dynamic_partitions(workload_partitions.name, new)
    outcome = {}
    for workload_id in workload_ids:
        result = job.execute_in_process(partition_key=workload_id, instance=instance, raise_on_error=False,
                                        run_config=QUIET_RUN_CONFIG,
                                        tags=workload_run_tags(load_workload(engine, workload_id)))
        outcome[workload_id] = result.success
        progress(workload_id, result.success, result.run_id)
    return outcome
