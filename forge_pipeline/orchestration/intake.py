"""Intake from the UI: a launchpad job that submits a request, and the sensor that turns
new Pending workloads into dynamic partitions and requests lifecycle runs over them in
batches, and finishes stranded workloads."""


from dagster import (Config, DefaultSensorStatus, Failure, OpExecutionContext, RunRequest, SensorEvaluationContext,
                     SensorResult, define_asset_job, job, op, sensor)

from forge_pipeline.intake.admission import admit_requests
from forge_pipeline.canonical import digest
from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.orchestration.metadata import problems_metadata
from forge_pipeline.orchestration.resources import AgentPoolResource, ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.states import State
from forge_pipeline.orchestration.runs import partition_ranges, range_tags, stranded_workloads
from forge_pipeline.settings import batch_size
from forge_pipeline.storage.records import claims_in_flight, list_workload_ids

workload_lifecycle_job = define_asset_job(
    "workload_lifecycle", selection=WORKLOAD_ASSETS,
    description="request -> plan -> shard executions -> verification -> evidence -> usage record, for a batch of "
                "workloads (a range of workload partitions)",
)


class SubmitRequestConfig(Config):
    document: str  # the request as YAML or JSON text (DESIGN §3.1)


@op
def submit_workload_request(context: OpExecutionContext, config: SubmitRequestConfig,
                            database: ForgeDatabaseResource, agent_pool: AgentPoolResource) -> str:
    """Admit one request (`admit_requests`, as `forge-pool submit` does); a refused one fails with the
    list of every problem by field path as its message, no traceback, and stores nothing."""
    source = "config.document"
    try:
        [(workload_id, created)] = admit_requests([(source, config.document)], agent_pool.pool(), database.engine)
    except RequestInvalid as error:
        # one document only: its problems are named by their field paths, without the source prefix
        # that admit_requests puts before each (it tells documents of a batch apart)
        problems = [Problem(problem.path.removeprefix(f"{source}: "), problem.message) for problem in error.problems]
        listed = "\n".join(str(problem) for problem in problems)
        raise Failure(description=f"request refused:\n{listed}", allow_retries=False,
                      metadata={"problems": problems_metadata(problems)}) from None
    context.log.info(f"{'admitted' if created else 'already admitted'} {workload_id}")
    return workload_id


@job(description="Submit a workload request from the launchpad; the intake sensor starts its lifecycle.")
def submit_request():
    submit_workload_request()


@sensor(job=workload_lifecycle_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def workload_intake_sensor(context: SensorEvaluationContext, database: ForgeDatabaseResource) -> SensorResult:
    """New Pending workloads become partitions, appended in order, and run in batches of at most
    FORGE_BATCH_SIZE (one run per range of consecutive partitions); stranded workloads (in
    flight, their run dead) get a run that takes them over, once per dead claim.

    A tick asks Dagster about the pending workloads only, never for the whole partition set,
    so its cost does not grow with the number of workloads ever run (benchmarks/lifecycle.py)."""
    engine, size, instance = database.engine(), batch_size(), context.instance
    new = [workload_id for workload_id in list_workload_ids(engine, State.PENDING)
           if not instance.has_dynamic_partition(workload_partitions.name, workload_id)]
    run_requests = [RunRequest(run_key=f"batch:{batch[0]}:{batch[-1]}", tags=range_tags(batch))
                    for batch in (new[start:start + size] for start in range(0, len(new), size))]
    stranded = stranded_workloads(engine, instance)
    if stranded:
        holders = claims_in_flight(engine)
        known = instance.get_dynamic_partitions(workload_partitions.name)
        known_set = set(known)
        run_requests += [
            RunRequest(run_key="resume:" + digest([[workload_id, holders[workload_id]] for workload_id in batch]),
                       tags=range_tags(batch))
            for batch in partition_ranges(known, [workload_id for workload_id in stranded if workload_id in known_set],
                                          size)]
    return SensorResult(run_requests=run_requests,
                        dynamic_partitions_requests=[workload_partitions.build_add_request(new)] if new else [])
