"""Largest-remainder splits and workload settlement: every µcr accounted for, deterministically."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forge_pipeline.settle.split import PLATFORM_PARTY, largest_remainder_split, settle_workload

parties = st.text("abcdefgh", min_size=1, max_size=3)
weights = st.dictionaries(parties, st.integers(0, 10**9), min_size=1, max_size=8).filter(lambda w: sum(w.values()) > 0)
totals = st.integers(0, 10**15)


@given(total=totals, weights=weights)
def test_split_parts_sum_exactly_and_stay_within_one_of_the_quota(total, weights):
    """Parts sum to the total; each is floor or ceiling of its exact quota; zero weight gets 0."""
    parts = largest_remainder_split(total, weights)
    assert sum(parts.values()) == total
    assert list(parts) == sorted(weights)
    weight_total = sum(weights.values())
    for key, part in parts.items():
        quota = Fraction(total * weights[key], weight_total)
        assert quota - 1 < part < quota + 1
        if weights[key] == 0:
            assert part == 0


@given(total=totals, weights=weights)
def test_split_is_deterministic_whatever_the_key_order(total, weights):
    """The same weights in any insertion order give the same parts."""
    reversed_weights = dict(reversed(list(weights.items())))
    assert largest_remainder_split(total, weights) == largest_remainder_split(total, reversed_weights)


@given(total=st.integers(0, 10**6), weight=st.integers(1, 10**6), keys=st.sets(parties, min_size=2, max_size=8))
def test_split_ties_go_to_the_smaller_key(total, weight, keys):
    """With equal weights, the leftover units go one each to the first keys in ascending order."""
    parts = largest_remainder_split(total, {key: weight for key in keys})
    ordered = [parts[key] for key in sorted(keys)]
    base, leftover = divmod(total, len(keys))
    assert ordered == [base + 1] * leftover + [base] * (len(keys) - leftover)


@pytest.mark.parametrize("total, weights, expected", [
    (10, {"a": 1, "b": 2}, {"a": 3, "b": 7}),  # quotas 3.33 / 6.67: the larger remainder wins
    (1, {"b": 1, "a": 1}, {"a": 1, "b": 0}),  # a tie: ascending key
    (100, {"x": 1, "y": 1, "z": 1}, {"x": 34, "y": 33, "z": 33}),
    (7, {"a": 0, "b": 3}, {"a": 0, "b": 7}),
    (0, {"a": 0, "b": 0}, {"a": 0, "b": 0}),
    (0, {}, {}),
])
def test_split_examples(total, weights, expected):
    """Hand-checked splits: remainders, ties, zero weights, a zero total."""
    assert largest_remainder_split(total, weights) == expected


@pytest.mark.parametrize("total, weights, message", [
    (-1, {"a": 1}, "total"),
    (1.0, {"a": 1}, "total"),
    (5, {"a": -1, "b": 2}, "weight of 'a'"),
    (5, {"a": True}, "weight of 'a'"),
    (5, {1: 1}, "keys must be strings"),
    (5, {"a": 0}, "weights that sum to 0"),
    (5, {}, "weights that sum to 0"),
])
def test_split_refuses_bad_input(total, weights, message):
    """Negative or non-integer amounts and a positive total over zero weight are errors."""
    with pytest.raises(ValueError, match=message):
        largest_remainder_split(total, weights)


units = st.dictionaries(st.sampled_from(["northwind", "southbay", "eastgate", PLATFORM_PARTY]),
                        st.integers(0, 10**12), max_size=4)


@given(charge_ucr=st.integers(0, (1 << 63) - 1), share_bps=st.integers(0, 10_000), verified_units=units)
def test_settlement_charge_equals_payouts_plus_fee(charge_ucr, share_bps, verified_units):
    """charge == Σ payouts + fee exactly; the pool is the floored share; the platform party is never paid out."""
    settlement = settle_workload(charge_ucr, share_bps, verified_units)
    payouts = settlement["payouts_ucr"]
    assert settlement["charge_ucr"] == charge_ucr == sum(payouts.values()) + settlement["platform_fee_ucr"]
    assert PLATFORM_PARTY not in payouts and all(part >= 0 for part in payouts.values())
    if sum(verified_units.values()) > 0:
        assert settlement["payout_pool_ucr"] == charge_ucr * share_bps // 10_000
    else:
        assert settlement["payout_pool_ucr"] == 0 and settlement["platform_fee_ucr"] == charge_ucr


def test_settlement_example_with_hub_recomputation():
    """1001 µcr at 80%: pool 800 (800.8 floored); the hub's quarter of the units stays with the fee."""
    settlement = settle_workload(1001, 8_000, {"northwind": 2, "southbay": 1, PLATFORM_PARTY: 1})
    assert settlement == {"charge_ucr": 1001, "payout_pool_ucr": 800,
                          "payouts_ucr": {"northwind": 400, "southbay": 200}, "platform_fee_ucr": 401}


@pytest.mark.parametrize("charge_ucr, share_bps, verified_units, message", [
    (-1, 8_000, {"a": 1}, "charge_ucr"),
    (100, 10_001, {"a": 1}, "provider_share_bps"),
    (100, 8_000, {"a": -5}, "weight of 'a'"),
    (100, 8_000, {"a": 1.5}, "weight of 'a'"),
])
def test_settlement_refuses_bad_input(charge_ucr, share_bps, verified_units, message):
    """A negative charge, a share over 100% or non-integer units are errors."""
    with pytest.raises(ValueError, match=message):
        settle_workload(charge_ucr, share_bps, verified_units)
