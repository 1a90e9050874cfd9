"""What `forge-pool status` reports about a workload (DESIGN §3.7), read from the records."""

import json

from sqlalchemy import Engine

from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.storage import records
from forge_pipeline.storage.database import artifacts_root


def workload_status(engine: Engine, workload_id: str) -> dict:
    workload = records.load_workload(engine, workload_id)
    usage = records.usage_record_of(engine, workload_id) or {}
    output = None
    if usage.get("evidence_path"):
        output_file = evidence_directory(usage["evidence_path"], artifacts_root()) / "output.json"
        output = json.loads(output_file.read_text()) if output_file.exists() else None
    request = workload["request"]
    return {
        "workload_id": workload_id,
        "request_id": request["request_id"],
        "organization": request["organization"],
        "project": request["project"],
        "workspace": request["workspace"],
        "primitive": request["primitive"],
        "profile": request["profile"],
        "state": workload["state"],
        "state_reason": workload["state_reason"],
        "submitted_at": workload["submitted_at"],
        "finalized_at": usage.get("finalized_at"),
        "seed": str(workload["seed"]),
        "work_units": usage.get("work_units"),
        "output": output,
        "output_digest": usage.get("output_digest"),
        "evidence_digest": usage.get("evidence_digest"),
        "plan_digest": usage.get("plan_digest"),
        "rate_card_version": usage.get("rate_card_version"),
        "charge_ucr": usage.get("charge_ucr"),
    }
