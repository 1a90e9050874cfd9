"""The one code location: `forge_pipeline.definitions:defs` (workspace.yaml).

The executor is chosen by environment (FORGE_EXECUTOR: in_process by default,
multiprocess for steps in their own processes) and the billing cadence by FORGE_BILLING_CYCLE
(daily by default, or monthly), not by code edits.
"""

from __future__ import annotations

import os

from dagster import AssetSpec, Definitions, in_process_executor, map_asset_specs, multiprocess_executor

from forge_pipeline.orchestration.billing_assets import BILLING_ASSETS, billing_cycle_schedule, settlement_job
from forge_pipeline.orchestration.intake import submit_request, workload_intake_sensor, workload_lifecycle_job
from forge_pipeline.orchestration.replay_assets import replay_job, workload_replay
from forge_pipeline.orchestration.resources import (AgentPoolResource, ArtifactStoreResource, ComputeBackendResource,
                                                    ForgeDatabaseResource)
from forge_pipeline.orchestration.stage_records import StageRecordsIOManager
from forge_pipeline.orchestration.workload_assets import STAGE_RECORDS, WORKLOAD_ASSETS

EXECUTORS = {"in_process": in_process_executor, "multiprocess": multiprocess_executor}


def resources() -> dict:
    return {
        STAGE_RECORDS: StageRecordsIOManager(),
        "database": ForgeDatabaseResource(),
        "artifacts": ArtifactStoreResource(),
        "agent_pool": AgentPoolResource(),
        "compute_backend": ComputeBackendResource(),
    }


def executor():
    """FORGE_EXECUTOR: in_process (default) or multiprocess on one machine; celery (Celery workers,
    one queue per hardware class) or celery_k8s (Kubernetes Jobs queued through Celery) beyond it
    (forge_pipeline.deploy.settings, docs/deployment.md). In-process by default: a lifecycle
    run carries a batch of workloads in about ten steps, most of them database work, and a
    multiprocess step costs 0.8-2 s of process start on a 2-core machine (DESIGN §5)."""
    name = os.environ.get("FORGE_EXECUTOR", "in_process")
    if name in ("celery", "celery_k8s"):
        from forge_pipeline.deploy.settings import CLUSTER_EXECUTORS
        return CLUSTER_EXECUTORS[name]()
    if name not in EXECUTORS:
        raise ValueError(f"FORGE_EXECUTOR must be one of {', '.join([*EXECUTORS, 'celery', 'celery_k8s'])}, "
                         f"got {name!r}")
    return EXECUTORS[name]


# The UI lists asset groups by name; numbering each stage's group keeps them in lifecycle order.
LIFECYCLE_GROUPS = ("intake", "plan", "execute", "verify", "aggregate", "finalize", "settle", "audit")


def in_lifecycle_order(spec: AssetSpec) -> AssetSpec:
    return spec.replace_attributes(group_name=f"{LIFECYCLE_GROUPS.index(spec.group_name) + 1}_{spec.group_name}")


defs = Definitions(
    assets=map_asset_specs(in_lifecycle_order, [*WORKLOAD_ASSETS, *BILLING_ASSETS, workload_replay]),
    jobs=[workload_lifecycle_job, submit_request, settlement_job, replay_job],
    schedules=[billing_cycle_schedule],
    sensors=[workload_intake_sensor],
    resources=resources(),
    executor=executor(),
)
