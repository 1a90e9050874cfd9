"""The workload lifecycle as assets partitioned by workload (dynamic partitions).

workload_request -> execution_plan -> shard_executions -> verification_report ->
evidence_bundle -> usage_record. Each asset calls one core function from
`forge_pipeline.lifecycle` and attaches what an operator or auditor needs to see.
Shard fan-out is a dynamic graph with one step per Agent batch (never one per shard),
one dynamic output per hardware class so each class's steps carry its queue tag.
"""


import contextlib
import json
from pathlib import Path

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, DynamicOut,
                     DynamicOutput, DynamicPartitionsDefinition, Failure, MetadataValue, OpExecutionContext, Output,
                     RetryPolicy, asset, graph_asset, op)

from forge_pipeline import lifecycle
from forge_pipeline.assign.pool import HARDWARE_CLASSES
from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.canonical import digest
from forge_pipeline.deploy.kubernetes import K8S_CONFIG_TAG, step_k8s_config
from forge_pipeline.orchestration.metadata import evidence_metadata, usage_metadata
from forge_pipeline.orchestration.resources import (AgentPoolResource, ArtifactStoreResource, ComputeBackendResource,
                                                    ForgeDatabaseResource)
from forge_pipeline.orchestration.runs import claim_holder_is_dead, tag_run_driver

workload_partitions = DynamicPartitionsDefinition(name="workloads")


@contextlib.contextmanager
def reported_as_failure():
    """A workload that ended Failed is a clean Dagster failure with its reason, not a stack trace."""
    try:
        yield
    except lifecycle.WorkloadFailed as error:
        raise Failure(description=str(error), allow_retries=False) from None


@asset(partitions_def=workload_partitions, group_name="intake", kinds={"python"}, output_required=False)
def workload_request(context: AssetExecutionContext, database: ForgeDatabaseResource,
                     compute_backend: ComputeBackendResource):
    """The admitted request, claimed for this run (a re-execution of the same run may continue;
    a workload whose claiming run is dead is taken over), re-validated, with the seed the hub
    recorded. Where this process cannot compute (FORGE_DEVICE=gpu without a device) nothing
    is claimed: the workload stays Pending for a machine that can. A run refused the workload
    (it is or was another run's) materializes nothing, so the rest of its lifecycle is skipped
    and its assets stay as they were."""
    unusable = compute_backend.unusable_reason()
    if unusable:
        raise Failure(description=f"{context.partition_key} not claimed: {unusable}", allow_retries=False)
    tag_run_driver(context.instance, context.run, context.job_def.executor_def.name)
    with reported_as_failure():
        try:
            admitted = lifecycle.admitted_request(database.engine(), context.partition_key,
                                                  context.run.root_run_id or context.run.run_id,
                                                  claim_holder_is_dead(context.instance))
        except lifecycle.RunRefused as refusal:
            context.log.warning(f"nothing to do, nothing materialized: {refusal}")
            return
    request = admitted["request"]
    yield Output(admitted, metadata={
        "primitive": request["primitive"], "organization": request["organization"],
        "project": request["project"], "workspace": request["workspace"], "seed": str(admitted["seed"]),
        "request": MetadataValue.json(request),
    })


@asset(partitions_def=workload_partitions, group_name="plan")
def execution_plan(context: AssetExecutionContext, workload_request: dict, database: ForgeDatabaseResource,
                   agent_pool: AgentPoolResource, compute_backend: ComputeBackendResource) -> dict:
    """Deterministic shards, the verification sample and the plan digest; shards assigned to Agent batches."""
    with reported_as_failure():
        planned = lifecycle.plan_workload(database.engine(), workload_request, agent_pool.pool(),
                                          compute_backend.gpu_assignable())
    plan = planned["plan"]
    context.add_output_metadata({
        "plan_digest": plan["plan_digest"], "shards": len(plan["shards"]), "work_units": plan["work_units"],
        "verification": plan["verification"]["mode"], "gpu_agents_assignable": planned["gpu_assignable"],
        "batches": MetadataValue.json({agent: len(shards) for agent, shards in planned["batches"].items()}),
        "probation": MetadataValue.json(planned["probation"]),
        "reliability": MetadataValue.json(planned["reliability"]),
    })
    return planned


QUEUE_TAG = "dagster-celery/queue"  # a Celery worker started with `-q gpu` takes only GPU batches


@op(out={f"{hardware}_batches": DynamicOut(str, is_required=False) for hardware in HARDWARE_CLASSES})
def dispatch_batches(context: OpExecutionContext, execution_plan: dict, database: ForgeDatabaseResource,
                     agent_pool: AgentPoolResource):
    """One dynamic output per Agent batch, on the output of the Agent's hardware class."""
    lifecycle.start_execution(database.engine(), execution_plan)
    pool = agent_pool.pool()
    for agent_id in execution_plan["batches"]:
        agent = pool.agent(agent_id)
        yield DynamicOutput(agent_id, mapping_key=agent.step_key, output_name=f"{agent.hardware}_batches")


# A batch records nothing (the collect step does), so re-running a lost one is safe: this
# retries a step pod lost on Kubernetes; a SIGKILLed Celery worker is re-queued by the broker.
@op(retry_policy=RetryPolicy(max_retries=2, delay=10))
def execute_agent_batch(context: OpExecutionContext, execution_plan: dict, agent_id: str,
                        agent_pool: AgentPoolResource) -> list:
    """One Agent's batch of shards, on the backend its hardware class calls for."""
    attempts = lifecycle.execute_batch(execution_plan, agent_pool.pool(), agent_id)
    context.log.info(f"{agent_id}: {len(attempts)} shards on {attempts[0]['backend']}")
    return attempts


@op
def gather_attempts(batches: list) -> list:
    """One hardware class's batches as one list (skipped when the class had no batch)."""
    return [attempt for batch in batches for attempt in batch]


@op
def collect_shard_attempts(context: OpExecutionContext, execution_plan: dict, by_hardware: list,
                           database: ForgeDatabaseResource, agent_pool: AgentPoolResource,
                           compute_backend: ComputeBackendResource) -> dict:
    """Record every attempt, retry failed shards on other Agents (here: GPU ones only if this process has a GPU)."""
    with reported_as_failure():
        attempts = lifecycle.collect_attempts(database.engine(), execution_plan, agent_pool.pool(), by_hardware,
                                              compute_backend.gpu_visible())
    failed = [attempt for attempt in attempts if attempt["status"] != "completed"]
    context.add_output_metadata({
        "attempts": len(attempts), "failed_attempts": len(failed),
        "backends": ", ".join(sorted({attempt["backend"] for attempt in attempts})),
        "wall_ms_total": sum(attempt["wall_ms"] for attempt in attempts),
    })
    return {"attempts": attempts}


@graph_asset(partitions_def=workload_partitions, group_name="execute")
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
        gathered.append(gather(class_batches.map(lambda agent_id, run=execute: run(execution_plan, agent_id))
                               .collect()))
    return collect_shard_attempts(execution_plan, gathered)


@asset(partitions_def=workload_partitions, group_name="verify")
def verification_report(context: AssetExecutionContext, execution_plan: dict, shard_executions: dict,
                        database: ForgeDatabaseResource) -> dict:
    """A verdict for every attempt; rejected shards replaced by the hub's recomputation."""
    report = lifecycle.verify_workload(database.engine(), execution_plan, shard_executions["attempts"])
    context.add_output_metadata({
        "mode": report["mode"], "sample_rate": report["sample_rate"], "sampled_shards": len(report["sampled"]),
        "rejected_shards": len(report["rejected_shards"]),
        "verified_work_units_by_provider": MetadataValue.json(report["verified_work_units_by_provider"]),
    })
    return report


@asset(partitions_def=workload_partitions, group_name="aggregate",
       check_specs=[AssetCheckSpec("evidence_bundle_intact", asset="evidence_bundle",
                                    description="manifest.json and output.json on disk have the recorded digests")])
def evidence_bundle(context: AssetExecutionContext, execution_plan: dict, verification_report: dict,
                    database: ForgeDatabaseResource, artifacts: ArtifactStoreResource):
    """The exact merged output and its manifest (Merkle root of shard digests, bundle digest)."""
    evidence = lifecycle.aggregate_workload(database.engine(), execution_plan, verification_report, artifacts.path())
    directory = evidence_directory(evidence["evidence_path"], artifacts.path())
    yield Output(evidence, metadata=evidence_metadata(execution_plan, evidence, directory))
    yield _evidence_check(evidence, directory)


def _evidence_check(evidence: dict, directory: Path) -> AssetCheckResult:
    """Re-read the bundle from disk: its manifest digest and output digest must be what was recorded."""
    manifest = json.loads((directory / "manifest.json").read_text())
    output = json.loads((directory / "output.json").read_text())
    passed = digest(manifest) == evidence["evidence_digest"] and digest(output) == evidence["output_digest"]
    return AssetCheckResult(check_name="evidence_bundle_intact", passed=passed, severity=AssetCheckSeverity.ERROR,
                            metadata={"evidence_digest": evidence["evidence_digest"]})


@asset(partitions_def=workload_partitions, group_name="finalize")
def usage_record(context: AssetExecutionContext, execution_plan: dict, verification_report: dict,
                 evidence_bundle: dict, database: ForgeDatabaseResource) -> dict:
    """Work units, attribution, replay references and money (charge, components, rate card version,
    payout split); the workload is Finalized."""
    record = lifecycle.finalize_workload(database.engine(), execution_plan, verification_report, evidence_bundle)
    context.add_output_metadata(usage_metadata(record, verification_report))
    return record


WORKLOAD_ASSETS = [workload_request, execution_plan, shard_executions, verification_report, evidence_bundle,
                   usage_record]
