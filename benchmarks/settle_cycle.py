"""Settling one billing cycle of N finalized workloads end to end: ledger postings, then statements."""

import json
import tempfile
import time

from sqlalchemy import insert

from forge_pipeline.settle import tables
from forge_pipeline.settle.rate_card import load_rate_card
from forge_pipeline.settle.settlement import cycle_entries, cycle_of, settle_cycle
from forge_pipeline.storage.database import dispose_engines, open_engine, usage_records, workloads

ORGANIZATIONS, PROVIDERS = 50, ("northwind", "contoso", "fabrikam")


def finalized_rows(count: int, finalized_at: str) -> tuple[list[dict], list[dict]]:
    """N workloads in state Finalized with their usage records, as the lifecycle writes them."""
    version = load_rate_card().version
    workload_rows, usage_rows = [], []
    for index in range(count):
        workload_id = f"wl_bench{index:012d}"
        organization = f"org{index % ORGANIZATIONS}"
        record = {"workload_id": workload_id, "organization": organization, "project": "p", "workspace": "w",
                  "adapter": "sdk", "primitive": "probabilistic_simulation/portfolio_loss@1", "profile": "standard@1",
                  "work_units": 1000 + index % 997, "seed": "1", "plan_digest": "0" * 64, "output_digest": "0" * 64,
                  "merkle_root": "0" * 64, "evidence_digest": "0" * 64, "evidence_path": "-", "kernel_digest": "0" * 64,
                  "rate_card_version": version, "charge_ucr": 10_000 + index % 9973, "finalized_at": finalized_at,
                  "verified_work_units_by_provider": {PROVIDERS[index % 3]: 600, PROVIDERS[(index + 1) % 3]: 400}}
        workload_rows.append({"workload_id": workload_id, "request_id": workload_id, "organization": organization,
                              "project": "p", "workspace": "w", "adapter": "sdk", "primitive": record["primitive"],
                              "profile": "standard@1", "request_json": "{}", "seed": "1", "state": "Finalized",
                              "state_reason": "bench", "submitted_at": finalized_at, "updated_at": finalized_at})
        usage_rows.append({**{key: record[key] for key in record if key != "verified_work_units_by_provider"},
                           "record_json": json.dumps(record)})
    return workload_rows, usage_rows


def bench_settle_cycle(count: int) -> dict:
    cycle = cycle_of(__import__("datetime").date(2026, 11, 25))
    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{home}/bench.db"
        engine = open_engine(url)
        workload_rows, usage_rows = finalized_rows(count, "2026-11-25T12:00:00.000000Z")
        with engine.begin() as connection:
            for start in range(0, count, 50_000):
                connection.execute(insert(workloads), workload_rows[start:start + 50_000])
                connection.execute(insert(usage_records), usage_rows[start:start + 50_000])
        # The setup's own rows are not the settlement's: left alive, their millions of objects
        # slow every garbage collection the timed part triggers.
        del workload_rows, usage_rows
        started = time.perf_counter()
        summary = settle_cycle(engine, cycle)
        posted_s = time.perf_counter() - started
        frame = cycle_entries(engine, cycle.key)
        statement, payouts = tables.credit_statement(frame).collect(), tables.provider_payouts(frame).collect()
        total_s = time.perf_counter() - started
        dispose_engines()
    assert summary["newly_posted"] == count and statement["workloads"].sum() == count
    return {"workloads": count, "posting_s": posted_s, "total_s": total_s, "statement_rows": statement.height,
            "payout_rows": payouts.height}
