"""Intake from the UI: a launchpad job that submits a request, and the sensor that turns
new Pending workloads into dynamic partitions and requests lifecycle runs over them in
batches, and finishes stranded workloads."""


from dagster import (Config, DefaultSensorStatus, Failure, OpExecutionContext, RunRequest, SensorEvaluationContext,
                     SensorResult, define_asset_job, job, op, sensor)

from forge_pipeline.intake.admission import admit_requests
from forge_pipeline.canonical import digest
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.orchestration.metadata import problems_metadata
from forge_pipeline.orchestration.resources import AgentPoolResource, ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.states import State
from forge_pipeline.orchestration.runs import batch_size, partition_ranges, range_tags, stranded_workloads
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
    try:
        [(workload_id, created)] = admit_requests([("config.document", config.document)], agent_pool.pool(),
                                                  database.engine)
    except RequestInvalid as error:
        raise Failure(description=f"request refused:\n{error}", allow_retries=False,
                      metadata={"problems": problems_metadata(error.problems)}) from None
    context.log.info(f"{'admitted' if created else 'already admitted'} {workload_id}")
    return workload_id


@job(description="Submit a workload request from the launchpad; the intake sensor starts its lifecycle.")
def submit_request():
    submit_workload_request()


@sensor(job=workload_lifecycle_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def workload_intake_sensor(context: SensorEvaluationContext, database: ForgeDatabaseResource) -> SensorResult:
    """New Pending workloads become partitions, run in batches of at most FORGE_BATCH_SIZE (one run
    per range of consecutive partitions); stranded workloads (in flight, their run dead) get a
    run that takes them over, once per dead claim."""
    engine, size = database.engine(), batch_size()
    known = context.instance.get_dynamic_partitions(workload_partitions.name)
    known_set = set(known)
    new = [workload_id for workload_id in list_workload_ids(engine, State.PENDING) if workload_id not in known_set]
    holders = claims_in_flight(engine)
    stranded = [workload_id for workload_id in stranded_workloads(engine, context.instance) if workload_id in known_set]
    run_requests = [RunRequest(run_key=f"batch:{batch[0]}:{batch[-1]}", tags=range_tags(batch))
                    for batch in partition_ranges([*known, *new], new, size)]
    run_requests += [RunRequest(run_key="resume:" + digest([[workload_id, holders[workload_id]] for workload_id in batch]),
                                tags=range_tags(batch))
                     for batch in partition_ranges(known, stranded, size)]
    return SensorResult(run_requests=run_requests,
                        dynamic_partitions_requests=[workload_partitions.build_add_request(new)] if new else [])
