import math
from fractions import Fraction

import numpy as np
import pytest

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.philox import philox4x32_10
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss
from forge_pipeline.intake.problems import Problems

PRIMITIVE = PortfolioLoss()


def arguments(scenarios=400, obligors=None, bins=5, quantiles=("0.9", "0.99")):
    obligors = obligors or [{"exposure": 100, "pd": "0.3"}, {"exposure": 250, "pd": "0.1"},
                            {"exposure": 40, "pd": "0.5"}]
    problems = Problems()
    normalized = PRIMITIVE.normalize_arguments(
        {"scenarios": scenarios, "obligors": obligors, "bins": bins, "quantiles": list(quantiles)}, problems)
    assert not problems.found, problems.found
    return normalized


def run(args, seed, shard_size):
    n = args["scenarios"]
    shards = [PRIMITIVE.execute_shard(args, seed, start, min(n, start + shard_size), NUMPY_BACKEND)
              for start in range(0, n, shard_size)]
    return PRIMITIVE.merge(args, shards)


def loop_reference(args, seed):
    """DESIGN §3.3 read literally: one Philox block per word, Python integers throughout."""
    obligors = args["obligors"]
    k_count = len(obligors)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    thresholds = [min(2**32 - 1, math.floor(Fraction(o["pd"]) * 2**32)) for o in obligors]
    losses = []
    for j in range(args["scenarios"]):
        loss = 0
        for k, obligor in enumerate(obligors):
            e = j * k_count + k
            b = e // 4
            word = philox4x32_10((b % 2**32, b >> 32, 0, 0), key)[e % 4]
            loss += obligor["exposure"] if word < thresholds[k] else 0
        losses.append(loss)
    total_exposure = sum(o["exposure"] for o in obligors)
    bins = args["bins"]
    histogram = [0] * bins
    for loss in losses:
        histogram[min(bins - 1, loss * bins // total_exposure) if total_exposure else 0] += 1
    ordered = sorted(losses)
    n = len(losses)
    var, es = {}, {}
    for q in args["quantiles"]:
        k = math.ceil(Fraction(q) * n)
        var[q] = ordered[k - 1]
        es[q] = {"tail_sum": sum(ordered[k - 1:]), "tail_count": n - k + 1}
    return {"scenarios": n, "loss_total": sum(losses), "loss_max": max(losses), "histogram": histogram,
            "value_at_risk": var, "expected_shortfall": es}


def test_output_matches_a_plain_python_reading_of_the_contract():
    """The NumPy path equals a word-by-word Python loop over the contract (thresholds, bins, VaR, ES)."""
    args = arguments(scenarios=300)
    assert run(args, 20261125, 300) == loop_reference(args, 20261125)


@pytest.mark.parametrize("shard_size", [1, 7, 64, 301])
def test_shard_count_does_not_change_the_output(shard_size):
    """Any shard size gives the same canonical output digest as a single shard."""
    args = arguments(scenarios=301)
    assert digest(run(args, 99, shard_size)) == digest(run(args, 99, 301))


def test_certain_and_impossible_defaults_are_hand_checkable():
    """pd 0 never defaults; pd 1 (threshold 2^32-1) defaults unless the word is exactly 2^32-1."""
    args = arguments(scenarios=1000, obligors=[{"exposure": 7, "pd": "1"}, {"exposure": 5, "pd": "0"}], bins=2,
                     quantiles=["0.5"])
    output = run(args, 3, 250)
    assert output["loss_total"] == 7 * 1000 and output["loss_max"] == 7
    assert output["histogram"] == [0, 1000]  # a loss of 7 of 12 lands in bin floor(7*2/12) = 1
    assert output["value_at_risk"]["0.5"] == 7
    assert output["expected_shortfall"]["0.5"] == {"tail_sum": 7 * 501, "tail_count": 501}


def test_zero_total_exposure_puts_every_loss_in_bin_zero():
    """With E = 0 every scenario loses 0 and lands in bin 0 (no division by zero)."""
    args = arguments(scenarios=10, obligors=[{"exposure": 0, "pd": "0.5"}], bins=3, quantiles=["0.9"])
    assert run(args, 1, 3)["histogram"] == [10, 0, 0]


def test_decimal_probabilities_are_exact_not_binary_floats():
    """pd 0.1 written as a number or a string gives the same threshold: floor(2^32 / 10)."""
    from forge_pipeline.execute.primitives.portfolio_loss import default_thresholds
    assert default_thresholds([{"pd": "0.1"}])[0] == 429496729
    as_number = arguments(obligors=[{"exposure": 1, "pd": 0.1}])
    as_text = arguments(obligors=[{"exposure": 1, "pd": "0.1"}])
    assert as_number == as_text


def test_shard_checks_catch_a_tampered_histogram():
    """The spot check finds a shard whose histogram no longer sums to its scenarios."""
    args = arguments(scenarios=50)
    shard = PRIMITIVE.execute_shard(args, 5, 0, 50, NUMPY_BACKEND)
    assert PRIMITIVE.check_shard(args, 0, 50, shard) == []
    shard["histogram"][0] += 1
    assert any("histogram" in problem for problem in PRIMITIVE.check_shard(args, 0, 50, shard))


@pytest.mark.gpu
@pytest.mark.parametrize("scenarios, obligors, start", [(1, 1, 0), (70_001, 3, 5), (300_007, 37, 1_000_003)])
def test_cupy_path_matches_numpy_bit_for_bit(scenarios, obligors, start):
    """The CUDA kernel gives the NumPy shard result exactly, across many thread blocks and ragged tails."""
    backend = select_backend("gpu")
    args = arguments(scenarios=start + scenarios, bins=17, quantiles=["0.999"],
                     obligors=[{"exposure": 1000 + 31 * k, "pd": f"0.0{k % 9 + 1}"} for k in range(obligors)])
    gpu = PRIMITIVE.execute_shard(args, 0xFEEDFACECAFEBEEF, start, start + scenarios, backend)
    cpu = PRIMITIVE.execute_shard(args, 0xFEEDFACECAFEBEEF, start, start + scenarios, NUMPY_BACKEND)
    assert gpu == cpu
    assert np.int64(cpu["loss_total"]) >= 0
