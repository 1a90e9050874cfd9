"""Settlement tables (lazy Polars) over small ledger frames: statements, payouts, reconciliation, dtypes."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from benchmarks.settlement import bench_settlement
from forge_pipeline.settle.tables import ENTRY_SCHEMA, credit_statement, cycle_reconciliation, provider_payouts

CUSTOMER_ACME = "customer:acme/risk/prod"


def entries(*rows: tuple) -> pl.LazyFrame:
    """Rows of (transaction_id, kind, account, amount_ucr, workload_id, cycle, organization, provider_id)."""
    full_rows = [
        {"sequence": sequence, "transaction_id": transaction, "kind": kind, "account": account, "amount_ucr": amount,
         "workload_id": workload, "cycle": cycle, "organization": organization, "project": "risk",
         "workspace": "prod", "provider_id": provider, "recorded_at": "2026-11-25T12:00:00Z"}
        for sequence, (transaction, kind, account, amount, workload, cycle, organization, provider)
        in enumerate(rows, start=1)
    ]
    return pl.LazyFrame(full_rows, schema=ENTRY_SCHEMA)


def test_credit_statement_sums_charges_per_workspace():
    """Customer settlement entries become positive charges per org/project/workspace, sorted, net of
    refunds; other kinds ignored."""
    frame = entries(
        ("tx3", "settlement", "customer:zeta/risk/prod", -500, "wl3", "2026-11-25", "zeta", None),
        ("tx1", "settlement", CUSTOMER_ACME, -1000, "wl1", "2026-11-25", "acme", None),
        ("tx1", "settlement", "provider:northwind", 800, "wl1", "2026-11-25", "acme", "northwind"),
        ("tx2", "settlement", CUSTOMER_ACME, -250, "wl2", "2026-11-25", "acme", None),
        ("tx4", "refund", "customer:zeta/risk/prod", 500, "wl3", "2026-11-25", "zeta", None),
        ("tx9", "adjustment", CUSTOMER_ACME, -7, "wl2", "2026-11-25", "acme", None),
    )
    statement = credit_statement(frame)
    assert isinstance(statement, pl.LazyFrame)
    expected = pl.DataFrame({"organization": ["acme", "zeta"], "project": ["risk", "risk"],
                             "workspace": ["prod", "prod"], "workloads": [2, 1], "refunds": [0, 1],
                             "charge_ucr": [1250, 0]},
                            schema_overrides={"workloads": pl.Int64, "refunds": pl.Int64, "charge_ucr": pl.Int64})
    assert_frame_equal(statement.collect(), expected)


def test_provider_payouts_sum_per_provider():
    """Provider settlement entries sum per provider with the workloads paid; customer and platform rows ignored."""
    frame = entries(
        ("tx1", "settlement", CUSTOMER_ACME, -1000, "wl1", "2026-11-25", "acme", None),
        ("tx1", "settlement", "provider:southbay", 200, "wl1", "2026-11-25", "acme", "southbay"),
        ("tx1", "settlement", "provider:northwind", 600, "wl1", "2026-11-25", "acme", "northwind"),
        ("tx1", "settlement", "platform:revenue", 200, "wl1", "2026-11-25", "acme", None),
        ("tx2", "settlement", "provider:northwind", 300, "wl2", "2026-11-25", "acme", "northwind"),
    )
    expected = pl.DataFrame({"provider_id": ["northwind", "southbay"], "workloads": [2, 1], "payout_ucr": [900, 200]},
                            schema_overrides={"workloads": pl.Int64, "payout_ucr": pl.Int64})
    assert_frame_equal(provider_payouts(frame).collect(), expected)


def test_cycle_reconciliation_flags_an_unbalanced_cycle():
    """Per cycle, charges == payouts + fees: a balanced cycle is true, one with a missing µcr is false."""
    frame = entries(
        ("tx1", "settlement", CUSTOMER_ACME, -1001, "wl1", "2026-11-24", "acme", None),
        ("tx1", "settlement", "provider:northwind", 800, "wl1", "2026-11-24", "acme", "northwind"),
        ("tx1", "settlement", "platform:revenue", 201, "wl1", "2026-11-24", "acme", None),
        ("tx2", "settlement", CUSTOMER_ACME, -500, "wl2", "2026-11-25", "acme", None),
        ("tx2", "settlement", "platform:revenue", 499, "wl2", "2026-11-25", "acme", None),
    )
    expected = pl.DataFrame({"cycle": ["2026-11-24", "2026-11-25"], "charge_ucr": [1001, 500], "payout_ucr": [800, 0],
                             "platform_fee_ucr": [201, 499], "balanced": [True, False]},
                            schema_overrides={"charge_ucr": pl.Int64, "payout_ucr": pl.Int64,
                                              "platform_fee_ucr": pl.Int64})
    assert_frame_equal(cycle_reconciliation(frame).collect(), expected)


def test_money_columns_are_int64_even_for_no_rows():
    """Every money column is Int64 in the plan's schema and after collecting, including on an empty ledger."""
    empty = pl.LazyFrame(schema=ENTRY_SCHEMA)
    for table, money in ((credit_statement, ["charge_ucr"]), (provider_payouts, ["payout_ucr"]),
                         (cycle_reconciliation, ["charge_ucr", "payout_ucr", "platform_fee_ucr"])):
        collected = table(empty).collect()
        assert collected.height == 0
        assert all(collected.schema[name] == pl.Int64 for name in money)
        assert not any(dtype.is_float() for dtype in collected.schema.values())


@pytest.mark.parametrize("change", [
    lambda frame: frame.with_columns(pl.col("amount_ucr").cast(pl.Float64)),
    lambda frame: frame.with_columns(pl.col("amount_ucr").cast(pl.Int32)),
    lambda frame: frame.drop("workspace"),
])
def test_tables_refuse_entries_with_float_money_or_missing_columns(change):
    """A float (or narrower) amount column or a missing column is refused before any table is planned."""
    frame = change(entries(("tx1", "settlement", CUSTOMER_ACME, -1000, "wl1", "2026-11-25", "acme", None)))
    for table in (credit_statement, provider_payouts, cycle_reconciliation):
        with pytest.raises(TypeError, match="ledger entries need columns"):
            table(frame)


def test_benchmark_tables_agree_with_plain_python():
    """The benchmark's generated ledger gives the same tables in Polars and in plain Python (it raises if not)."""
    result = bench_settlement(4_000, repeats=1)
    assert (result["records"], result["payout_rows"]) == (4_000, 200)
    with pytest.raises(ValueError, match="multiple of 4"):
        bench_settlement(10)
