"""Pricing: hand-checked components, ceiling rounding, non-billable work, the budget cap."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forge_pipeline.canonical import canonical_json
from forge_pipeline.settle.pricing import (COMPONENTS, BudgetExceeded, apply_budget_cap, estimate_charge,
                                           price_workload)
from forge_pipeline.settle.rate_card import Unpriced, load_rate_card

CARD = load_rate_card("2026-11-01")
PORTFOLIO = "probabilistic_simulation/portfolio_loss@1"
counts = st.integers(0, 10**12)


def price(work_units=10_000_000, shard_count=10, output_bytes=5000, nonbillable_units=0, profile="standard@1",
          mode="replay_sample"):
    return price_workload(CARD, PORTFOLIO, profile, mode, work_units, shard_count, output_bytes, nonbillable_units)


def test_components_match_a_hand_computation():
    """10^7 draws, standard@1, replay_sample, 10 shards, 5000 output bytes: each component by hand."""
    charge = price(nonbillable_units=2_000_000)
    assert charge.rate_card_version == "2026-11-01"
    assert charge.work_ucr == 2_000_000  # 10^7 × 200000 / 10^6
    assert charge.verification_ucr == 200_000  # 10% surcharge
    assert charge.aggregation_ucr == 1_000  # 10 shards × 100
    assert charge.artifacts_ucr == 50  # ceil(5000 / 1024) = 5 KiB × 10
    assert charge.retention_ucr == 150  # 5 KiB × 1 × 30 days
    assert charge.minimum_adjustment_ucr == 0 and charge.budget_waiver_ucr == 0
    assert charge.charge_ucr == 2_201_200
    assert (charge.nonbillable_units, charge.nonbillable_ucr) == (2_000_000, 400_000)


def test_profile_changes_price_and_retention():
    """assured@1 costs more per draw and keeps evidence 365 days; economy@1 without verification is cheaper."""
    assured = price(profile="assured@1")
    assert (assured.work_ucr, assured.verification_ucr, assured.retention_ucr) == (3_000_000, 300_000, 5 * 365)
    economy = price(profile="economy@1", mode="none")
    assert (economy.work_ucr, economy.verification_ucr, economy.retention_ucr) == (1_200_000, 0, 5 * 7)


@pytest.mark.parametrize("work_units, work_ucr, verification_ucr", [
    (0, 0, 0), (1, 1, 1), (5, 1, 1), (6, 2, 1), (5_000_000, 1_000_000, 100_000), (5_000_001, 1_000_001, 100_001),
])
def test_unit_prices_round_up_to_whole_microcredits(work_units, work_ucr, verification_ucr):
    """Ceiling rule: 0.2 µcr per draw bills 1 draw as 1 µcr and 6 draws (1.2 µcr) as 2 µcr; same for surcharges."""
    charge = price(work_units=work_units)
    assert (charge.work_ucr, charge.verification_ucr) == (work_ucr, verification_ucr)


@pytest.mark.parametrize("output_bytes, kib", [(0, 0), (1, 1), (1024, 1), (1025, 2), (10 * 1024, 10)])
def test_output_size_rounds_up_to_whole_kib(output_bytes, kib):
    """Artifact and retention prices use the canonical output size rounded up to whole KiB."""
    charge = price(output_bytes=output_bytes)
    assert (charge.artifacts_ucr, charge.retention_ucr) == (kib * 10, kib * 30)


def test_minimum_charge_tops_up_a_tiny_workload():
    """A workload worth less than the minimum is charged exactly the minimum, the gap as its own component."""
    charge = price(work_units=100, shard_count=1, output_bytes=100)
    assert charge.work_ucr + charge.verification_ucr + charge.aggregation_ucr + charge.artifacts_ucr \
        + charge.retention_ucr == 20 + 2 + 100 + 10 + 30
    assert charge.minimum_adjustment_ucr == CARD.minimum_charge_ucr - 162
    assert charge.charge_ucr == CARD.minimum_charge_ucr


@given(work_units=counts, shard_count=st.integers(0, 10**6), output_bytes=counts, nonbillable_units=counts)
def test_nonbillable_work_is_never_charged(work_units, shard_count, output_bytes, nonbillable_units):
    """Failed and rejected attempts change only the non-billable section, never a component or charge_ucr."""
    billed_only = price(work_units, shard_count, output_bytes, 0)
    with_waste = price(work_units, shard_count, output_bytes, nonbillable_units)
    assert [getattr(with_waste, name) for name in COMPONENTS] == [getattr(billed_only, name) for name in COMPONENTS]
    assert with_waste.charge_ucr == billed_only.charge_ucr
    assert with_waste.nonbillable_ucr == price(nonbillable_units, shard_count, output_bytes, 0).work_ucr


@given(work_units=counts, shard_count=st.integers(0, 10**6), output_bytes=counts)
def test_charge_is_the_exact_sum_of_its_components_and_json_native(work_units, shard_count, output_bytes):
    """charge_ucr equals the component sum; to_json is canonical JSON with only integers and the version."""
    charge = price(work_units, shard_count, output_bytes, 7)
    document = charge.to_json()
    assert document["charge_ucr"] == sum(document[name] for name in COMPONENTS) == charge.charge_ucr
    assert json.loads(canonical_json(document)) == document
    assert all(isinstance(value, int) for key, value in document.items() if key != "rate_card_version")


@pytest.mark.parametrize("field, value", [
    ("work_units", -1), ("work_units", 1.5), ("work_units", True), ("shard_count", -3), ("output_bytes", "10"),
    ("nonbillable_units", None), ("work_units", 1 << 63),
])
def test_non_integer_or_negative_quantities_are_refused(field, value):
    """Every quantity is a non-negative int64: floats, bools, strings and negatives raise naming the field."""
    arguments = {"work_units": 1, "shard_count": 1, "output_bytes": 1, "nonbillable_units": 0, field: value}
    with pytest.raises(ValueError, match=field):
        price(**arguments)


def test_charge_that_overflows_the_ledger_is_refused():
    """A charge beyond a signed 64-bit amount is an error, never a wrapped number."""
    with pytest.raises(ValueError, match="64-bit"):
        price(shard_count=(1 << 63) - 1)


def test_unpriced_mode_or_profile_is_refused():
    """A verification mode or profile the card does not price raises Unpriced, never a zero price."""
    with pytest.raises(Unpriced):
        price(mode="paranoid")
    with pytest.raises(Unpriced):
        price(profile="gold@1")


def test_estimate_is_the_charge_before_output_is_known():
    """The planning estimate has work, verification, aggregation and minimum, and no artifact or retention part."""
    estimate = estimate_charge(CARD, PORTFOLIO, "standard@1", "replay_sample", 10_000_000, 10)
    assert (estimate.work_ucr, estimate.verification_ucr, estimate.aggregation_ucr) == (2_000_000, 200_000, 1_000)
    assert (estimate.artifacts_ucr, estimate.retention_ucr, estimate.charge_ucr) == (0, 0, 2_201_000)


def test_budget_cap_refuses_an_estimate_over_the_cap():
    """Planning refuses a workload whose estimate exceeds max_credits_ucr, and accepts one exactly at the cap."""
    estimate = estimate_charge(CARD, PORTFOLIO, "standard@1", "replay_sample", 10_000_000, 10)
    with pytest.raises(BudgetExceeded, match="2201000 µcr exceeds the budget cap max_credits_ucr=2200999"):
        apply_budget_cap(estimate, 2_200_999)
    assert apply_budget_cap(estimate, 2_201_000) == estimate
    assert apply_budget_cap(estimate, None) == estimate


def test_budget_cap_waives_output_costs_over_the_cap():
    """After execution the customer pays at most the cap: the output-dependent excess becomes a negative waiver."""
    final = price()  # 2_201_200, of which 200 µcr are artifacts and retention
    capped = apply_budget_cap(final, 2_201_050)
    assert capped.budget_waiver_ucr == -150 and capped.charge_ucr == 2_201_050
    assert capped.work_ucr == final.work_ucr and capped.to_json()["budget_waiver_ucr"] == -150
    assert apply_budget_cap(capped, 2_201_050) == capped  # applying the same cap again changes nothing
    assert apply_budget_cap(capped, None) == capped
    assert apply_budget_cap(final, 10**9) == final


def test_budget_cap_rejects_a_bad_cap():
    """A negative or non-integer cap is an error, not "no cap"."""
    for cap in (-1, 1.5, "100", True):
        with pytest.raises(ValueError, match="max_credits_ucr"):
            apply_budget_cap(price(), cap)


@given(work_units=counts, shard_count=st.integers(0, 10**4), output_bytes=counts, slack=st.integers(0, 10**6))
def test_a_workload_admitted_at_planning_is_never_refused_at_settlement(work_units, shard_count, output_bytes, slack):
    """Estimate within the cap ⇒ the final charge caps cleanly at min(charge, cap), whatever the output size."""
    estimate = estimate_charge(CARD, PORTFOLIO, "standard@1", "replay_sample", work_units, shard_count)
    cap = estimate.charge_ucr + slack
    apply_budget_cap(estimate, cap)
    final = price(work_units, shard_count, output_bytes, 0)
    assert apply_budget_cap(final, cap).charge_ucr == min(final.charge_ucr, cap)
