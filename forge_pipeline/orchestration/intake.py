"""Intake from the UI: a launchpad job that submits a request, and the sensor that turns
each new Pending workload into a dynamic partition and requests its lifecycle run."""


from dagster import (Config, DefaultSensorStatus, Failure, OpExecutionContext, RunRequest, SensorEvaluationContext,
                     SensorResult, define_asset_job, job, op, sensor)

from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.intake.request import parse_document, validate_request
from forge_pipeline.assign.assignment import require_capable_pool
from forge_pipeline.orchestration.metadata import problems_metadata, workload_run_tags
from forge_pipeline.orchestration.resources import AgentPoolResource, ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.states import State
from forge_pipeline.storage.records import list_workload_ids, load_workload, store_request

workload_lifecycle_job = define_asset_job(
    "workload_lifecycle", selection=WORKLOAD_ASSETS,
    description="request -> plan -> shard executions -> verification -> evidence -> usage record, for one workload",
)


class SubmitRequestConfig(Config):
    document: str  # the request as YAML or JSON text (DESIGN §3.1)


@op
def submit_workload_request(context: OpExecutionContext, config: SubmitRequestConfig,
                            database: ForgeDatabaseResource, agent_pool: AgentPoolResource) -> str:
    """Validate and store one request; an invalid one fails with every problem by field path."""
    try:
        request = validate_request(parse_document(config.document, "config.document"))
        require_capable_pool(agent_pool.pool(), request.document)
        workload_id, created = store_request(database.engine(), request)
    except RequestInvalid as error:
        raise Failure(description=f"request refused:\n{error}", allow_retries=False,
                      metadata={"problems": problems_metadata(error.problems)}) from None
    context.log.info(f"{'admitted' if created else 'already admitted'} {workload_id}")
    return workload_id


@job(description="Submit a workload request from the launchpad; the intake sensor starts its lifecycle.")
def submit_request():
    submit_workload_request()


@sensor(job=workload_lifecycle_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def workload_intake_sensor(context: SensorEvaluationContext, database: ForgeDatabaseResource) -> SensorResult:
    """Each Pending workload not yet a partition becomes one, with one lifecycle run keyed by its id and
    tagged with its organization and primitive (the partition key itself is only a wl_ hash)."""
    known = set(context.instance.get_dynamic_partitions(workload_partitions.name))
    new = [workload_id for workload_id in list_workload_ids(database.engine(), State.PENDING) if workload_id not in known]
    engine = database.engine()
    return SensorResult(
        run_requests=[RunRequest(run_key=workload_id, partition_key=workload_id,
                                 tags=workload_run_tags(load_workload(engine, workload_id))) for workload_id in new],
        dynamic_partitions_requests=[workload_partitions.build_add_request(new)] if new else [],
    )
