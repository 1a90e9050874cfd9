"""Finalizing small workloads quickly through the core lifecycle (Dagster runs are tested elsewhere)."""

import datetime as dt
from pathlib import Path

from forge_pipeline.assign.pool import load_pool, parse_pool
from forge_pipeline.intake.request import validate_request
from forge_pipeline.lifecycle import run_lifecycle_inline
from forge_pipeline.settle.settlement import cycle_of
from forge_pipeline.storage.database import forge_home
from forge_pipeline.storage.records import store_request
from tests.lifecycle.requests import request


def finalize(engine, pool=None, **changes) -> dict:
    policy = {"shard_size": 100, **changes.pop("policy", {})}
    document = request(**{"arguments": {"scenarios": 600}, "policy": policy, **changes})
    workload_id, _ = store_request(engine, validate_request(document))
    return run_lifecycle_inline(engine, workload_id, pool or load_pool(), False, forge_home() / "artifacts")


def corrupt_pool(rate: str = "1"):
    """An honest provider and a corrupting one: the liar's shards are rejected and recomputed."""
    return parse_pool({"providers": [
        {"id": "honest", "agents": [{"id": "honest-1", "hardware": "cpu"}]},
        {"id": "liar", "agents": [{"id": "liar-1", "hardware": "cpu", "fault": {"kind": "corrupt", "rate": rate}}]},
    ]})


def today_cycle():
    return cycle_of(dt.datetime.now(dt.timezone.utc).date())


def artifacts() -> Path:
    return forge_home() / "artifacts"
