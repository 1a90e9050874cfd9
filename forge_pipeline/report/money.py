"""Money as finance reads it: exact credits beside µcr, a total row, a workload's charge and split.

Amounts stay integers in µcr; credits are decimal text made from those integers by
integer arithmetic (1 credit = 10^6 µcr), never a float, so the text is exact.
"""

from __future__ import annotations

import polars as pl

from forge_pipeline.settle.pricing import COMPONENTS
from forge_pipeline.settle.settlement import workload_split

UCR_PER_CREDIT = 1_000_000
TOTAL_LABEL = "TOTAL"


def credits_text(amount_ucr: int) -> str:
    """Exact decimal credits of an integer µcr amount: 1234567 -> '1.234567', -5 -> '-0.000005'."""
    whole, fraction = divmod(abs(amount_ucr), UCR_PER_CREDIT)
    return f"{'-' if amount_ucr < 0 else ''}{whole:,}.{fraction:06d}"


def with_total(table: pl.LazyFrame, label_column: str) -> pl.LazyFrame:
    """The table with a last row labelled TOTAL in `label_column` summing every integer column, and
    for each `*_ucr` column a `*_credits` text column beside it. Other text columns are empty on the
    total row. Raises TypeError when `label_column` is not text."""
    schema = table.collect_schema()
    if schema.get(label_column) != pl.String:
        raise TypeError(f"{label_column} must be a text column, got {schema.get(label_column)}")
    integers = [name for name, dtype in schema.items() if dtype.is_integer()]
    total = table.select(pl.lit(TOTAL_LABEL).alias(label_column), *[pl.col(name).sum() for name in integers])
    combined = pl.concat([table, total], how="diagonal")
    order = []
    for name in schema:
        order.append(name)
        if name.endswith("_ucr"):
            order.append(f"{name.removesuffix('_ucr')}_credits")
    credits = [pl.col(name).map_elements(credits_text, return_dtype=pl.String)
               .alias(f"{name.removesuffix('_ucr')}_credits") for name in schema if name.endswith("_ucr")]
    return combined.with_columns(*credits).select(order)


def usage_money(record: dict) -> dict:
    """A usage record's money: charge and components (µcr), rate card version, and the split the
    settlement will post (payout per provider, platform fee), which sums exactly to the charge.

    Returns {charge_ucr, rate_card_version, components_ucr: {name: µcr}, payouts_ucr: {provider: µcr},
    payout_pool_ucr, platform_fee_ucr, nonbillable_ucr: what failed and rejected work would have cost}."""
    split = workload_split(record)
    components = {name: record["charge"][name] for name in COMPONENTS}
    assert sum(components.values()) == record["charge_ucr"] == sum(split["payouts_ucr"].values()) + \
        split["platform_fee_ucr"], (components, split)
    return {"charge_ucr": record["charge_ucr"], "rate_card_version": record["rate_card_version"],
            "components_ucr": components, "payouts_ucr": split["payouts_ucr"],
            "payout_pool_ucr": split["payout_pool_ucr"], "platform_fee_ucr": split["platform_fee_ucr"],
            "nonbillable_ucr": record["charge"]["nonbillable_ucr"]}


def components_table(money: dict) -> pl.LazyFrame:
    """`usage_money`'s charge components as rows (component, amount_ucr, amount_credits) with a TOTAL row."""
    components = pl.LazyFrame({"component": list(money["components_ucr"]),
                               "amount_ucr": list(money["components_ucr"].values())},
                              schema={"component": pl.String, "amount_ucr": pl.Int64})
    return with_total(components, "component")


def split_table(money: dict) -> pl.LazyFrame:
    """`usage_money`'s split as rows (party, amount_ucr, amount_credits): each provider, the platform fee,
    and a TOTAL row equal to the charge."""
    parties = [f"provider:{provider}" for provider in money["payouts_ucr"]] + ["platform:fee"]
    split = pl.LazyFrame({"party": parties, "amount_ucr": [*money["payouts_ucr"].values(), money["platform_fee_ucr"]]},
                         schema={"party": pl.String, "amount_ucr": pl.Int64})
    return with_total(split, "party")
