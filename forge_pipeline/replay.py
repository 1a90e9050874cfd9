"""Replay: reproduce a finalized workload's output and money from its replay references.

The references are read from the ledger's workload record (`workload:<id>`, hash-chained),
not from mutable tables. Replay re-plans (the plan digest must match), re-executes every
shard on whatever hardware is here, re-aggregates, re-prices with the recorded rate card
version and re-splits the charge; then it compares all of it, and the evidence bundle on
disk, with what was recorded. Any difference is named; none means bit-for-bit reproduction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import Engine

from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.assign.pool import Agent
from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import select_backend
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.merkle import root_of_hex_leaves
from forge_pipeline.execute.runner import hub_execute
from forge_pipeline.intake.request import validate_request
from forge_pipeline.ledger.ledger import entries
from forge_pipeline.plan.planning import build_plan
from forge_pipeline.settle.settlement import Cycle, price_finalized, settlement_transaction
from forge_pipeline.storage import records


class ReplayImpossible(LookupError):
    """The workload has no ledger record to replay (not finalized, or unknown)."""


def replay_references(engine: Engine, workload_id: str) -> dict:
    posted = entries(engine, transaction_id=f"workload:{workload_id}")
    if not posted:
        records.load_workload(engine, workload_id)  # an unknown id says so
        raise ReplayImpossible(f"{workload_id} has no workload record in the ledger (it never finalized)")
    return json.loads(posted[0]["memo"])


def replay_workload(engine: Engine, workload_id: str, artifacts: Path) -> dict:
    """Everything recomputed and compared with the ledger's references and the bundle under `artifacts`."""
    references = replay_references(engine, workload_id)
    workload = records.load_workload(engine, workload_id)
    request = validate_request(workload["request"]).document  # the same normalization the lifecycle applied
    differences: list[str] = []

    def compare(what: str, recorded, reproduced) -> None:
        if recorded != reproduced:
            differences.append(f"{what}: recorded {recorded!r}, reproduced {reproduced!r}")

    started = time.perf_counter()
    plan = build_plan(request, int(references["seed"]))
    compare("plan_digest", references["plan_digest"], plan["plan_digest"])
    replayer = Agent("replay", "platform", "gpu" if select_backend().name == "cupy" else "cpu", (), "hub", 1)
    shards = [hub_execute(plan, request["arguments"], shard["index"], replayer) for shard in plan["shards"]]
    output = get_primitive(plan["primitive"]).merge(request["arguments"], [shard["result"] for shard in shards])
    output_digest, root = digest(output), root_of_hex_leaves([shard["digest"] for shard in shards])
    compare("output_digest", references["output_digest"], output_digest)
    compare("merkle_root", references["merkle_root"], root)
    # Which attempts failed is a fact of the original run, not something re-execution can
    # reproduce: the recorded non-billable units are taken as given; everything else is recomputed.
    charge = price_finalized(request, plan, references["charge"]["nonbillable_units"], output,
                             references["rate_card_version"])
    compare("charge", references["charge"], charge.to_json())
    _compare_settlement(engine, workload_id, references, charge.charge_ucr, compare)
    _compare_stored(engine, workload_id, references, artifacts, compare)
    return {"workload_id": workload_id, "reproduced": not differences, "differences": differences,
            "output_digest": output_digest, "merkle_root": root, "charge_ucr": charge.charge_ucr,
            "backend": shards[0]["backend"], "wall_s": round(time.perf_counter() - started, 3)}


def _compare_settlement(engine: Engine, workload_id: str, references: dict, charge_ucr: int, compare) -> None:
    """When settled, the posted amounts must be the settlement of the reproduced charge."""
    posted = entries(engine, transaction_id=f"settle:{workload_id}")
    if not posted:
        return
    expected = settlement_transaction({**references, "charge_ucr": charge_ucr}, Cycle(posted[0]["cycle"], "", ""))
    compare("settlement amounts", {row["account"]: row["amount_ucr"] for row in posted},
            {entry["account"]: entry["amount_ucr"] for entry in expected.entries})


def _compare_stored(engine: Engine, workload_id: str, references: dict, artifacts: Path, compare) -> None:
    """The usage record row and the evidence bundle on disk must still say what the ledger says."""
    stored = records.usage_record_of(engine, workload_id) or {}
    for key in ("output_digest", "merkle_root", "evidence_digest", "charge_ucr"):
        compare(f"usage record {key}", references[key], stored.get(key))
    directory = evidence_directory(references["evidence_path"], artifacts)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        output = json.loads((directory / "output.json").read_text())
    except (OSError, ValueError) as error:
        compare("evidence bundle readable", True, f"{type(error).__name__}: {error}")
        return
    compare("evidence manifest digest", references["evidence_digest"], digest(manifest))
    compare("evidence manifest output_digest", references["output_digest"], manifest.get("output_digest"))
    compare("evidence manifest merkle_root", references["merkle_root"], manifest.get("merkle_root"))
    compare("evidence output.json digest", references["output_digest"], digest(output))
