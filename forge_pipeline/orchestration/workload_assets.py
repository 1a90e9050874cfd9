"""The workload lifecycle as assets partitioned by workload (dynamic partitions).

workload_request -> execution_plan -> shard_executions -> verification_report ->
evidence_bundle -> usage_record. One run carries a batch of workloads (a range of
workload partitions: `BackfillPolicy.single_run()`), so each asset calls its core
function from `forge_pipeline.lifecycle` once per workload of the batch and returns the
stage records keyed by workload id; the stage-records IO manager stores each under its
workload's partition, and every workload keeps its own materializations, metadata and
lineage. A workload that fails at a stage is left out of the later stages; the others
go on. Shard fan-out is a dynamic graph with one step per Agent across the whole batch
(never one per shard or per workload), one dynamic output per hardware class so each
class's steps carry its queue tag.
"""


import json
import traceback
import warnings
from pathlib import Path

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, BackfillPolicy,
                     BetaWarning, DynamicOut, DynamicOutput, DynamicPartitionsDefinition, Failure, MetadataValue,
                     OpExecutionContext, Out, Output, RetryPolicy, asset, graph_asset, op)

from forge_pipeline import lifecycle
from forge_pipeline.assign.pool import HARDWARE_CLASSES
from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.canonical import digest
from forge_pipeline.deploy.kubernetes import K8S_CONFIG_TAG, step_k8s_config
from forge_pipeline.orchestration.metadata import evidence_metadata, usage_metadata
from forge_pipeline.orchestration.resources import (AgentPoolResource, ArtifactStoreResource, ComputeBackendResource,
                                                    ForgeDatabaseResource)
from forge_pipeline.orchestration.runs import claim_holder_is_dead, tag_run_driver

# backfill_policy is marked beta on the 1.13 line (pinned); it is what single-run backfills use.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

workload_partitions = DynamicPartitionsDefinition(name="workloads")
STAGE_RECORDS = "stage_records"  # the IO manager key (orchestration.stage_records)
BATCHED = {"partitions_def": workload_partitions, "backfill_policy": BackfillPolicy.single_run()}


def partition_metadata(context: AssetExecutionContext | OpExecutionContext, workload_id: str, metadata: dict) -> None:
    """Metadata on one workload's materialization (an op of a graph asset reaches it through its step)."""
    step = context.op_execution_context if isinstance(context, AssetExecutionContext) else context
    step.get_step_execution_context().add_asset_metadata(metadata, partition_key=workload_id)


def report_failures(context: AssetExecutionContext | OpExecutionContext, errors: dict[str, Exception],
                    on_partitions: bool = True, refused_note: str = "nothing to do here") -> None:
    """Each workload that failed at this stage: its reason on its materialization and in the run's log
    (with the traceback when the failure was not a recorded workload fault). A workload this run was
    refused (another run has or had its lifecycle) is left as it was: only the log says why."""
    for workload_id, error in errors.items():
        if isinstance(error, lifecycle.RunRefused):
            context.log.warning(f"{workload_id}: {refused_note}: {error}")
            continue
        if on_partitions:
            partition_metadata(context, workload_id, {"failed": str(error)})
        if isinstance(error, lifecycle.WorkloadFailed):
            context.log.warning(f"{workload_id}: {error}")
        else:
            context.log.error(f"{workload_id}: {''.join(traceback.format_exception(error))}")


@asset(**BATCHED, io_manager_key=STAGE_RECORDS, group_name="intake", kinds={"python"}, output_required=False)
def workload_request(context: AssetExecutionContext, database: ForgeDatabaseResource,
                     compute_backend: ComputeBackendResource):
    """The admitted requests, claimed for this run (a re-execution of the same run may continue;
    a workload whose claiming run is dead is taken over), re-validated, with the seeds the hub
    recorded. Where this process cannot compute (FORGE_DEVICE=gpu without a device) nothing
    is claimed: the workloads stay Pending for a machine that can.

    A run refused every workload it carries (a re-launch of Finalized workloads: their lifecycle
    has ended) yields no output: nothing is materialized, no stage runs, and each workload's assets
    stay as they were; the log points to the replay_workload job."""
    unusable = compute_backend.unusable_reason()
    if unusable:
        raise Failure(description=f"{len(context.partition_keys)} workload(s) not claimed: {unusable}",
                      allow_retries=False)
    tag_run_driver(context.instance, context.run, context.job_def.executor_def.name)
    engine, claimant = database.engine(), context.run.root_run_id or context.run.run_id
    holder_is_dead = claim_holder_is_dead(context.instance)
    admitted, errors = lifecycle.for_each(dict.fromkeys(context.partition_keys), lambda workload_id, _: (
        lifecycle.admitted_request(engine, workload_id, claimant, holder_is_dead)))
    for workload_id, record in admitted.items():
        request = record["request"]
        partition_metadata(context, workload_id, {
            "primitive": request["primitive"], "organization": request["organization"],
            "project": request["project"], "workspace": request["workspace"], "seed": str(record["seed"]),
            "request": MetadataValue.json(request)})
    refused_all = not admitted and all(isinstance(error, lifecycle.RunRefused) for error in errors.values())
    report_failures(context, errors, refused_note="left as it was, nothing materialized" if refused_all
                    else "nothing to do here")
    if not refused_all:
        yield Output(admitted)


@asset(**BATCHED, io_manager_key=STAGE_RECORDS, group_name="plan")
def execution_plan(context: AssetExecutionContext, workload_request: dict, database: ForgeDatabaseResource,
                   agent_pool: AgentPoolResource, compute_backend: ComputeBackendResource) -> dict:
    """Deterministic shards, the verification sample and the plan digest; shards assigned to Agent batches."""
    engine, pool, gpu_assignable = database.engine(), agent_pool.pool(), compute_backend.gpu_assignable()
    plans, errors = lifecycle.for_each(workload_request, lambda workload_id, admitted: (
        lifecycle.plan_workload(engine, admitted, pool, gpu_assignable)))
    for workload_id, planned in plans.items():
        plan = planned["plan"]
        partition_metadata(context, workload_id, {
            "plan_digest": plan["plan_digest"], "shards": len(plan["shards"]), "work_units": plan["work_units"],
            "verification": plan["verification"]["mode"], "gpu_agents_assignable": planned["gpu_assignable"],
            "batches": MetadataValue.json({agent: len(shards) for agent, shards in planned["batches"].items()}),
            "probation": MetadataValue.json(planned["probation"]),
            "reliability": MetadataValue.json(planned["reliability"])})
    report_failures(context, errors)
    return plans


QUEUE_TAG = "dagster-celery/queue"  # a Celery worker started with `-q gpu` takes only GPU batches


@op(out={f"{hardware}_batches": DynamicOut(dict, is_required=False) for hardware in HARDWARE_CLASSES})
def dispatch_batches(context: OpExecutionContext, execution_plan: dict, database: ForgeDatabaseResource,
                     agent_pool: AgentPoolResource):
    """One dynamic output per Agent with a batch in any workload of the run, on the output of the
    Agent's hardware class: {"agent_id", "workload_ids"}."""
    engine, pool = database.engine(), agent_pool.pool()
    started, errors = lifecycle.for_each(execution_plan, lambda workload_id, planned: (
        lifecycle.start_execution(engine, planned)))
    report_failures(context, errors, on_partitions=False)
    for agent in pool.agents:
        workload_ids = [workload_id for workload_id in started if agent.agent_id in execution_plan[workload_id]["batches"]]
        if workload_ids:
            yield DynamicOutput({"agent_id": agent.agent_id, "workload_ids": workload_ids}, mapping_key=agent.step_key,
                                output_name=f"{agent.hardware}_batches")


# A batch records nothing (the collect step does), so re-running a lost one is safe: this
# retries a step pod lost on Kubernetes; a SIGKILLed Celery worker is re-queued by the broker.
@op(retry_policy=RetryPolicy(max_retries=2, delay=10))
def execute_agent_batch(context: OpExecutionContext, execution_plan: dict, batch: dict,
                        agent_pool: AgentPoolResource) -> dict:
    """One Agent's shards of every workload in the batch, on the backend its hardware class calls for:
    {workload_id: attempts}."""
    pool, agent_id = agent_pool.pool(), batch["agent_id"]
    attempts, errors = lifecycle.for_each({workload_id: execution_plan[workload_id] for workload_id in batch["workload_ids"]},
                                          lambda workload_id, planned: lifecycle.execute_batch(planned, pool, agent_id))
    report_failures(context, errors, on_partitions=False)
    context.log.info(f"{agent_id}: {sum(map(len, attempts.values()))} shards of {len(attempts)} workload(s)")
    return attempts


@op
def gather_attempts(batches: list) -> dict:
    """One hardware class's Agent batches as {workload_id: [attempts of each batch]} (empty when the class had none)."""
    gathered: dict[str, list] = {}
    for batch in batches:
        for workload_id, attempts in batch.items():
            gathered.setdefault(workload_id, []).append(attempts)
    return gathered


@op(out=Out(io_manager_key=STAGE_RECORDS))
def collect_shard_attempts(context: OpExecutionContext, execution_plan: dict, by_hardware: list,
                           database: ForgeDatabaseResource, agent_pool: AgentPoolResource,
                           compute_backend: ComputeBackendResource) -> dict:
    """Record every attempt, retry failed shards on other Agents (here: GPU ones only if this process has a GPU)."""
    engine, pool, gpu_visible = database.engine(), agent_pool.pool(), compute_backend.gpu_visible()
    batches = {workload_id: [batch for gathered in by_hardware for batch in gathered.get(workload_id, [])]
               for workload_id in execution_plan}
    collected, errors = lifecycle.for_each({workload_id: execution_plan[workload_id] for workload_id, workload_batches
                                            in batches.items() if workload_batches}, lambda workload_id, planned: (
        {"attempts": lifecycle.collect_attempts(engine, planned, pool, batches[workload_id], gpu_visible)}))
    for workload_id, record in collected.items():
        attempts = record["attempts"]
        partition_metadata(context, workload_id, {
            "attempts": len(attempts), "failed_attempts": sum(attempt["status"] != "completed" for attempt in attempts),
            "backends": ", ".join(sorted({attempt["backend"] for attempt in attempts})),
            "wall_ms_total": sum(attempt["wall_ms"] for attempt in attempts)})
    report_failures(context, errors)
    return collected


@graph_asset(**BATCHED, group_name="execute")
def shard_executions(execution_plan: dict) -> dict:
    """Every shard attempt: Agent, backend actually used, digest, work units, wall time.

    Batch steps of each hardware class carry its Celery queue tag. The classes meet in a
    fan-in, which (unlike a dynamic collect) tolerates a class with no batches at all.
    """
    batches = dispatch_batches(execution_plan)
    gathered = []
    for hardware, class_batches in zip(HARDWARE_CLASSES, batches):
        execute = execute_agent_batch.alias(f"execute_{hardware}_batch").tag(
            {QUEUE_TAG: hardware, "forge/hardware": hardware, K8S_CONFIG_TAG: step_k8s_config(hardware)})
        gather = gather_attempts.alias(f"gather_{hardware}_attempts")
        gathered.append(gather(class_batches.map(lambda batch, run=execute: run(execution_plan, batch)).collect()))
    return collect_shard_attempts(execution_plan, gathered)


@asset(**BATCHED, io_manager_key=STAGE_RECORDS, group_name="verify")
def verification_report(context: AssetExecutionContext, execution_plan: dict, shard_executions: dict,
                        database: ForgeDatabaseResource) -> dict:
    """A verdict for every attempt; rejected shards replaced by the hub's recomputation."""
    engine = database.engine()
    reports, errors = lifecycle.for_each(shard_executions, lambda workload_id, executions: (
        lifecycle.verify_workload(engine, execution_plan[workload_id], executions["attempts"])))
    for workload_id, report in reports.items():
        partition_metadata(context, workload_id, {
            "mode": report["mode"], "sample_rate": report["sample_rate"], "sampled_shards": len(report["sampled"]),
            "rejected_shards": len(report["rejected_shards"]),
            "verified_work_units_by_provider": MetadataValue.json(report["verified_work_units_by_provider"])})
    report_failures(context, errors)
    return reports


@asset(**BATCHED, io_manager_key=STAGE_RECORDS, group_name="aggregate",
       check_specs=[AssetCheckSpec("evidence_bundle_intact", asset="evidence_bundle",
                                    description="manifest.json and output.json on disk have the recorded digests")])
def evidence_bundle(context: AssetExecutionContext, execution_plan: dict, verification_report: dict,
                    database: ForgeDatabaseResource, artifacts: ArtifactStoreResource):
    """The exact merged output and its manifest (Merkle root of shard digests, bundle digest)."""
    engine, root = database.engine(), artifacts.path()
    bundles, errors = lifecycle.for_each(verification_report, lambda workload_id, report: (
        lifecycle.aggregate_workload(engine, execution_plan[workload_id], report, root)))
    broken = []
    for workload_id, evidence in bundles.items():
        directory = evidence_directory(evidence["evidence_path"], root)
        partition_metadata(context, workload_id, evidence_metadata(execution_plan[workload_id], evidence, directory))
        if not _bundle_intact(evidence, directory):
            broken.append(workload_id)
    report_failures(context, errors)
    yield Output(bundles)
    yield AssetCheckResult(check_name="evidence_bundle_intact", passed=not broken, severity=AssetCheckSeverity.ERROR,
                           metadata={"bundles_checked": len(bundles), "broken": MetadataValue.json(broken)})


def _bundle_intact(evidence: dict, directory: Path) -> bool:
    """Re-read the bundle from disk: its manifest digest and output digest must be what was recorded."""
    manifest = json.loads((directory / "manifest.json").read_text())
    output = json.loads((directory / "output.json").read_text())
    return digest(manifest) == evidence["evidence_digest"] and digest(output) == evidence["output_digest"]


@asset(**BATCHED, io_manager_key=STAGE_RECORDS, group_name="finalize")
def usage_record(context: AssetExecutionContext, execution_plan: dict, verification_report: dict,
                 evidence_bundle: dict, database: ForgeDatabaseResource) -> dict:
    """Work units, attribution, replay references and money (charge, components, rate card version,
    payout split); the workload is Finalized."""
    engine = database.engine()
    usage, errors = lifecycle.for_each(evidence_bundle, lambda workload_id, evidence: lifecycle.finalize_workload(
        engine, execution_plan[workload_id], verification_report[workload_id], evidence))
    for workload_id, record in usage.items():
        partition_metadata(context, workload_id, usage_metadata(record, verification_report[workload_id]))
    report_failures(context, errors)
    return usage


WORKLOAD_ASSETS = [workload_request, execution_plan, shard_executions, verification_report, evidence_bundle,
                   usage_record]
