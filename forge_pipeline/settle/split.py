"""Exact splits of a charge into provider payouts and the platform fee (DESIGN §3.4).

Rounding: the payout pool is floor(charge × provider_share_bps / 10^4), so it never
exceeds the share; the pool is split over verified work units by the largest-remainder
method; the platform fee is the rest of the charge. Every µcr is accounted for:
charge == Σ payouts + fee, asserted before returning.
"""

from __future__ import annotations

from forge_pipeline.execute.runner import HUB
from forge_pipeline.settle.integers import BPS_WHOLE, require_count

# The hub recomputes rejected shards under this party; its verified units earn no payout,
# so their part of the pool stays with the platform fee.
PLATFORM_PARTY = HUB.provider_id


def largest_remainder_split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` in proportion to `weights`; parts sum exactly to `total`.

    Each party gets floor(total × w / W); the units left over go one each to the largest
    fractional remainders, equal remainders in ascending key order. The result is keyed
    in ascending key order. A zero weight gets 0.
    """
    require_count("total", total)
    _require_weights(weights)
    return _split(total, weights)


def _split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """largest_remainder_split of arguments already checked (settle_workload checks them once)."""
    weight_total = sum(weights.values())
    if weight_total == 0:
        if total != 0:
            raise ValueError(f"cannot split {total} over weights that sum to 0")
        return {key: 0 for key in sorted(weights)}
    parts = {key: total * weights[key] // weight_total for key in sorted(weights)}
    remainders = {key: total * weights[key] % weight_total for key in parts}
    leftover = total - sum(parts.values())
    # leftover < the number of nonzero remainders, so a zero weight never gets a unit.
    for key in sorted(parts, key=lambda key: (-remainders[key], key))[:leftover]:
        parts[key] += 1
    assert sum(parts.values()) == total, (total, weights, parts)
    return parts


def settle_workload(charge_ucr: int, provider_share_bps: int, verified_units_by_party: dict[str, int]) -> dict:
    """Provider payouts and platform fee for one workload's charge.

    Returns {charge_ucr, payout_pool_ucr, payouts_ucr: {provider: µcr}, platform_fee_ucr}.
    With no verified units at all (nothing to attribute), the whole charge is fee.
    """
    require_count("charge_ucr", charge_ucr)
    require_count("provider_share_bps", provider_share_bps, BPS_WHOLE)
    _require_weights(verified_units_by_party)
    attributable = sum(verified_units_by_party.values()) > 0
    pool_ucr = charge_ucr * provider_share_bps // BPS_WHOLE if attributable else 0
    parts = _split(pool_ucr, verified_units_by_party)  # pool_ucr <= charge_ucr: a count too
    payouts = {party: part for party, part in parts.items() if party != PLATFORM_PARTY}
    fee_ucr = charge_ucr - sum(payouts.values())
    assert sum(parts.values()) == pool_ucr and sum(payouts.values()) + fee_ucr == charge_ucr
    assert fee_ucr >= charge_ucr - pool_ucr and all(part >= 0 for part in payouts.values())
    return {"charge_ucr": charge_ucr, "payout_pool_ucr": pool_ucr, "payouts_ucr": payouts, "platform_fee_ucr": fee_ucr}


def _require_weights(weights: dict[str, int]) -> None:
    for key, weight in weights.items():
        if not isinstance(key, str):
            raise ValueError(f"weight keys must be strings, got {key!r}")
        require_count(f"weight of {key!r}", weight)
