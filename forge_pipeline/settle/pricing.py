"""Pricing a workload from the rate card: integer micro-credits (µcr), one rounding rule.

Rounding: every component that is not already a whole number of µcr is rounded UP to
the next whole µcr (ceiling), and a size in bytes is rounded up to whole KiB first:

    work_ucr          = ceil(work_units × ucr_per_million_units / 10^6)
    verification_ucr  = ceil(work_ucr × surcharge_bps / 10^4)
    aggregation_ucr   = shard_count × aggregation_ucr_per_shard
    artifacts_ucr     = ceil(output_bytes / 1024) × artifact_ucr_per_kib
    retention_ucr     = ceil(output_bytes / 1024) × ucr_per_kib_day × retention days of the profile
    minimum_adjustment_ucr = max(0, minimum_charge_ucr − the sum above)

Ceiling never bills less than the card says, and each component is off by under 1 µcr.

Only verified work is billable (DESIGN §1): the work units of failed and rejected
attempts are reported as `nonbillable_units` with what they would have cost at the work
price (`nonbillable_ucr`), and are never part of `charge_ucr`.

Budget cap (`policy.max_credits_ucr`): `apply_budget_cap` refuses a workload whose
charge known before execution (work, verification, aggregation, minimum: everything but
the output-dependent artifact and retention components) exceeds the cap; the planner
calls it on `estimate_charge`. After execution the customer never pays more than the
cap: an excess, which only the output-dependent components can cause, is waived as a
negative `budget_waiver_ucr`, so providers and platform share the capped charge.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from forge_pipeline.intake.problems import INT64_MAX
from forge_pipeline.settle.integers import BPS_WHOLE, ceil_div, require_count
from forge_pipeline.settle.rate_card import RateCard

UNITS_PER_PRICE = 1_000_000  # prices are per million work units
BYTES_PER_KIB = 1024
COMPONENTS = ("work_ucr", "verification_ucr", "aggregation_ucr", "artifacts_ucr", "retention_ucr",
              "minimum_adjustment_ucr", "budget_waiver_ucr")


class BudgetExceeded(ValueError):
    """Refused: the charge known before execution is over the request's `max_credits_ucr`."""

    def __init__(self, known_ucr: int, max_credits_ucr: int):
        self.known_ucr, self.max_credits_ucr = known_ucr, max_credits_ucr
        super().__init__(f"estimated charge {known_ucr} µcr exceeds the budget cap max_credits_ucr={max_credits_ucr}")


@dataclass(frozen=True)
class Charge:
    rate_card_version: str
    work_ucr: int
    verification_ucr: int
    aggregation_ucr: int
    artifacts_ucr: int
    retention_ucr: int
    minimum_adjustment_ucr: int
    budget_waiver_ucr: int  # <= 0: the part over the budget cap, not billed
    nonbillable_units: int  # work units of failed and rejected attempts
    nonbillable_ucr: int  # what they would have cost; never in charge_ucr

    @property
    def charge_ucr(self) -> int:
        return sum(getattr(self, name) for name in COMPONENTS)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "charge_ucr": self.charge_ucr}


def price_workload(rate_card: RateCard, primitive: str, profile: str, verification_mode: str, work_units: int,
                   shard_count: int, output_bytes: int, nonbillable_units: int) -> Charge:
    """The charge for a workload's verified work; see the module docstring for every rule."""
    for name, value in (("work_units", work_units), ("shard_count", shard_count), ("output_bytes", output_bytes),
                        ("nonbillable_units", nonbillable_units)):
        require_count(name, value)
    unit_price = rate_card.unit_price(primitive, profile)
    work_ucr = ceil_div(work_units * unit_price, UNITS_PER_PRICE)
    output_kib = ceil_div(output_bytes, BYTES_PER_KIB)
    components = {
        "work_ucr": work_ucr,
        "verification_ucr": ceil_div(work_ucr * rate_card.surcharge_bps(verification_mode), BPS_WHOLE),
        "aggregation_ucr": shard_count * rate_card.aggregation_ucr_per_shard,
        "artifacts_ucr": output_kib * rate_card.artifact_ucr_per_kib,
        "retention_ucr": output_kib * rate_card.retention_ucr_per_kib_day * rate_card.retention_days[profile],
    }
    charge = Charge(
        rate_card_version=rate_card.version,
        **components,
        minimum_adjustment_ucr=max(0, rate_card.minimum_charge_ucr - sum(components.values())),
        budget_waiver_ucr=0,
        nonbillable_units=nonbillable_units,
        nonbillable_ucr=ceil_div(nonbillable_units * unit_price, UNITS_PER_PRICE),
    )
    # The ledger and the settlement tables hold money as signed 64-bit integers.
    if max(charge.charge_ucr, charge.nonbillable_ucr) > INT64_MAX:
        raise ValueError(f"charge of {charge.charge_ucr} µcr does not fit a 64-bit ledger amount")
    return charge


def estimate_charge(rate_card: RateCard, primitive: str, profile: str, verification_mode: str, work_units: int,
                    shard_count: int) -> Charge:
    """The charge known at planning: the output, so its artifact and retention price, is not known yet."""
    return price_workload(rate_card, primitive, profile, verification_mode, work_units, shard_count,
                          output_bytes=0, nonbillable_units=0)


def apply_budget_cap(charge: Charge, max_credits_ucr: int | None) -> Charge:
    """Refuse (BudgetExceeded) or cap `charge` at `max_credits_ucr`; None means no cap."""
    if max_credits_ucr is None:
        return charge
    require_count("max_credits_ucr", max_credits_ucr)
    uncapped_ucr = charge.charge_ucr - charge.budget_waiver_ucr
    known_ucr = uncapped_ucr - charge.artifacts_ucr - charge.retention_ucr
    if known_ucr > max_credits_ucr:
        raise BudgetExceeded(known_ucr, max_credits_ucr)
    capped = dataclasses.replace(charge, budget_waiver_ucr=min(0, max_credits_ucr - uncapped_ucr))
    assert capped.charge_ucr == min(uncapped_ucr, max_credits_ucr)
    return capped
