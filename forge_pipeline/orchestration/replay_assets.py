"""Replay as a Dagster job: one materialization per replay, on the workload's partition,
so the UI shows each replay's verdict beside the workload's evidence and usage record."""

from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, MetadataValue, Output, asset, \
    define_asset_job

from forge_pipeline.orchestration.resources import ArtifactStoreResource, ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import evidence_bundle, usage_record, workload_partitions
from forge_pipeline.replay import replay_workload


@asset(partitions_def=workload_partitions, group_name="audit", deps=[evidence_bundle, usage_record],
       check_specs=[AssetCheckSpec("workload_replay_reproduces", asset="workload_replay",
                                    description="re-executed here, the output digest, Merkle root, "
                                                "charge and payouts equal the ledger's record")])
def workload_replay(context: AssetExecutionContext, database: ForgeDatabaseResource, artifacts: ArtifactStoreResource):
    """Re-plan, re-execute, re-aggregate and re-price the workload; every difference is named."""
    result = replay_workload(database.engine(), context.partition_key, artifacts.path())
    yield Output(result, metadata={
        "reproduced": result["reproduced"], "output_digest": result["output_digest"],
        "merkle_root": result["merkle_root"], "charge_ucr": result["charge_ucr"], "backend": result["backend"],
        "wall_s": result["wall_s"], "differences": MetadataValue.json(result["differences"]),
    })
    yield AssetCheckResult(check_name="workload_replay_reproduces", passed=result["reproduced"],
                           metadata={"differences": MetadataValue.json(result["differences"])})


replay_job = define_asset_job("replay_workload", selection=[workload_replay],
                              description="replay one finalized workload and compare it bit for bit")
