"""Launching lifecycle and settlement runs so that the configured executor is used.

`JobDefinition.execute_in_process` always runs every step in the calling process, whatever
the executor. `dagster.execute_job` on a reconstructable job runs the job's own executor
(FORGE_EXECUTOR): with `celery` this process orchestrates and every step is a Celery task
that a worker runs by reconstructing the job from this module, so the functions below must
stay importable at module level. The run is recorded on the given instance, which the UI,
the workers and a resume all read.
"""

from __future__ import annotations

import warnings

from dagster import DagsterInstance, DagsterRunStatus, JobDefinition, ReexecutionOptions, execute_job, reconstructable

from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG

PARTITION_TAG = "dagster/partition"
# dagster-celery registers its step task on the executor's Celery app again for every step
# it submits; Celery 5.7 warns each time, and the first registration is the one used.
warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")


def lifecycle_job() -> JobDefinition:
    from forge_pipeline.definitions import defs

    return defs.resolve_job_def("workload_lifecycle")


def settlement_job() -> JobDefinition:
    from forge_pipeline.definitions import defs

    return defs.resolve_job_def("billing_cycle_settlement")


def launch_lifecycle(workload_id: str, instance: DagsterInstance) -> tuple[bool, str]:
    """One workload's lifecycle run (its partition is added when missing); (success, run id)."""
    from forge_pipeline.orchestration.workload_assets import workload_partitions

    if not instance.has_dynamic_partition(workload_partitions.name, workload_id):
        instance.add_dynamic_partitions(workload_partitions.name, [workload_id])
    with execute_job(reconstructable(lifecycle_job), instance, run_config=QUIET_RUN_CONFIG,
                     tags={PARTITION_TAG: workload_id, "forge/workload": workload_id}) as result:
        return result.success, result.run_id


def launch_settlement(cycle_key: str, instance: DagsterInstance) -> tuple[bool, str]:
    """Settle one billing cycle through the configured executor; (success, run id)."""
    with execute_job(reconstructable(settlement_job), instance, run_config=QUIET_RUN_CONFIG,
                     tags={PARTITION_TAG: cycle_key}) as result:
        return result.success, result.run_id


def resume_run(run_id: str, instance: DagsterInstance) -> tuple[bool, str]:
    """Re-execute a run from where it stopped: steps that succeeded keep their outputs, the rest run again.

    A run whose orchestrating process died (a killed `pool run`, a lost machine) stays
    STARTED with nobody driving it; it is first marked failed, which is what it is.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} on this instance")
    if run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED):
        instance.report_run_failed(run)
    job = reconstructable(lifecycle_job if run.job_name == "workload_lifecycle" else settlement_job)
    # A re-execution takes only the tags it is given: without the partition it is not a partitioned run.
    tags = {key: value for key, value in run.tags.items() if key == PARTITION_TAG or key.startswith("forge/")}
    with execute_job(job, instance, run_config=run.run_config, tags=tags,
                     reexecution_options=ReexecutionOptions.from_failure(run_id, instance)) as result:
        return result.success, result.run_id
