"""Settlement tables over ledger entry rows: pure, lazy Polars (`LazyFrame -> LazyFrame`).

A settlement transaction (kind "settlement") holds one customer entry (account
"customer:{org}/{project}/{workspace}", amount −charge), one entry per paid provider
(account "provider:{id}", +payout, provider_id set) and one platform entry (account
"platform:revenue", +fee). The caller selects the rows (a billing cycle, an
organization) and collects once. Money columns are Int64, checked on the schema both
going in and coming out, so a float never reaches a statement.

`workloads` counts entries, not distinct workload ids: the ledger settles a workload
once, in one transaction (its idempotency key), with one customer entry and one entry
per paid provider, so the two are equal, and counting is ~10x cheaper than a per-group
distinct count on 10^6 rows (benchmarks/settlement.py).
"""

from __future__ import annotations

import polars as pl

ENTRY_SCHEMA = {
    "sequence": pl.Int64, "transaction_id": pl.String, "kind": pl.String, "account": pl.String,
    "amount_ucr": pl.Int64, "workload_id": pl.String, "cycle": pl.String, "organization": pl.String,
    "project": pl.String, "workspace": pl.String, "provider_id": pl.String, "recorded_at": pl.String,
}
SETTLEMENT = "settlement"
REFUND = "refund"  # a dispute refunded after settlement: the settlement negated, in the cycle of the resolution
SETTLEMENT_KINDS = (SETTLEMENT, REFUND)
CUSTOMER_PREFIX = "customer:"
PROVIDER_PREFIX = "provider:"
PLATFORM_REVENUE = "platform:revenue"
ATTRIBUTION = ["organization", "project", "workspace"]


def credit_statement(entries: pl.LazyFrame) -> pl.LazyFrame:
    """Per organization, project, workspace: settled workloads, refunds, and charge_ucr net of refunds."""
    customer = _settlement_entries(entries).filter(pl.col("account").str.starts_with(CUSTOMER_PREFIX))
    statement = (customer.group_by(ATTRIBUTION)
                 .agg((pl.col("kind") == SETTLEMENT).sum().cast(pl.Int64).alias("workloads"),
                      (pl.col("kind") == REFUND).sum().cast(pl.Int64).alias("refunds"),
                      (-pl.col("amount_ucr")).sum().alias("charge_ucr"))
                 .sort(ATTRIBUTION))
    return _require_int64(statement, ["workloads", "refunds", "charge_ucr"])


def provider_payouts(entries: pl.LazyFrame) -> pl.LazyFrame:
    """Per provider: workloads it was paid for and payout_ucr net of refunds."""
    provider = _settlement_entries(entries).filter(pl.col("account").str.starts_with(PROVIDER_PREFIX))
    payouts = (provider.group_by("provider_id")
               .agg((pl.col("kind") == SETTLEMENT).sum().cast(pl.Int64).alias("workloads"),
                    pl.col("amount_ucr").sum().alias("payout_ucr"))
               .sort("provider_id"))
    return _require_int64(payouts, ["workloads", "payout_ucr"])


def cycle_reconciliation(entries: pl.LazyFrame) -> pl.LazyFrame:
    """Per cycle: charges, payouts, fees and `balanced` (charge_ucr == payout_ucr + platform_fee_ucr)."""
    amount, account = pl.col("amount_ucr"), pl.col("account")
    reconciliation = (_settlement_entries(entries).group_by("cycle")
                      .agg((-amount).filter(account.str.starts_with(CUSTOMER_PREFIX)).sum().alias("charge_ucr"),
                           amount.filter(account.str.starts_with(PROVIDER_PREFIX)).sum().alias("payout_ucr"),
                           amount.filter(account == PLATFORM_REVENUE).sum().alias("platform_fee_ucr"))
                      .with_columns(balanced=pl.col("charge_ucr") == pl.col("payout_ucr") + pl.col("platform_fee_ucr"))
                      .sort("cycle"))
    return _require_int64(reconciliation, ["charge_ucr", "payout_ucr", "platform_fee_ucr"])


def _settlement_entries(entries: pl.LazyFrame) -> pl.LazyFrame:
    schema = entries.collect_schema()
    wrong = {name: schema.get(name) for name, dtype in ENTRY_SCHEMA.items() if schema.get(name) != dtype}
    if wrong:
        raise TypeError(f"ledger entries need columns {ENTRY_SCHEMA}; missing or mistyped: {wrong}")
    return entries.filter(pl.col("kind").is_in(SETTLEMENT_KINDS))


def _require_int64(frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """Asserted on the plan's schema: a float money column is a bug, not a rounding detail."""
    schema = frame.collect_schema()
    assert all(schema[name] == pl.Int64 for name in columns), schema
    return frame
