"""probabilistic_simulation/portfolio_loss@1 and @2: credit portfolio loss simulation (DESIGN §3.3).

In scenario j, obligor k defaults iff Philox word e = j*K + k of stream 0 is below its
threshold: @1 min(2^32 - 1, floor(pd_k * 2^32)) (so pd 1 survives with probability
2^-32), @2 floor(pd_k * 2^32) (pd 1 always defaults, pd 0 never). Losses are integer
sums of integer exposures; a shard returns its histogram, sums, max and its largest
losses (as many as the widest quantile tail needs), which merge exactly. @1 reports
expected shortfall as the undivided sum of the k-th..N-th losses; @2 as the
Acerbi–Tasche expected shortfall, an exact fraction. docs/primitives/portfolio_loss.md
and portfolio_loss_v2.md are the full contracts.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from forge_pipeline.execute.backend import Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.intake.problems import INT64_MAX, Problems, join

MAX_SCENARIOS = 10**11
MAX_OBLIGORS = 100_000
MAX_DRAWS = 10**13  # words per workload; far inside Philox's 2^66 per stream
MAX_BINS = 100_000
MAX_QUANTILES = 16
MAX_TAIL = 1_000_000  # largest N - k + 1 over the quantiles: the tail every shard returns
# Scenarios per NumPy chunk are sized so one chunk holds about this many words.
CHUNK_WORDS = 1 << 21


class PortfolioLoss(Primitive):
    family = "probabilistic_simulation"
    name = "portfolio_loss"
    version = 1
    work_unit = "draw"
    item = "scenario"
    default_shard_size = 250_000
    contract = "docs/primitives/portfolio_loss.md"

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        found_before = len(problems.found)
        document = problems.mapping(arguments, path, {"scenarios", "obligors", "bins", "quantiles"}, set())
        if document is None:
            return None
        scenarios = problems.integer(document.get("scenarios"), join(path, "scenarios"), 1, MAX_SCENARIOS) \
            if "scenarios" in document else None
        bins = problems.integer(document.get("bins"), join(path, "bins"), 1, MAX_BINS) if "bins" in document else None
        obligors = self._obligors(document, problems, join(path, "obligors")) if "obligors" in document else None
        quantiles = self._quantiles(document, problems, join(path, "quantiles")) if "quantiles" in document else None
        if len(problems.found) > found_before:
            return None
        total_exposure = sum(obligor["exposure"] for obligor in obligors)
        # Every intermediate (N*E for loss_total, E*B for the bin index) must fit a signed 64-bit integer.
        if total_exposure * max(scenarios, bins) > INT64_MAX:
            problems.add(join(path, "obligors"),
                         f"total exposure {total_exposure} times max(scenarios, bins) overflows a 64-bit integer")
        if scenarios * len(obligors) > MAX_DRAWS:
            problems.add(join(path, "scenarios"), f"scenarios x obligors must be <= {MAX_DRAWS}")
        tail = max(scenarios - math.ceil(Fraction(q) * scenarios) + 1 for q in quantiles)
        if tail > MAX_TAIL:
            problems.add(join(path, "quantiles"),
                         f"the widest tail holds {tail} scenarios; at most {MAX_TAIL} are kept exactly")
        if len(problems.found) > found_before:
            return None
        return {"scenarios": scenarios, "obligors": obligors, "bins": bins, "quantiles": quantiles}

    @staticmethod
    def _obligors(document: dict, problems: Problems, path: str) -> list[dict] | None:
        items = problems.list(document["obligors"], path, 1, MAX_OBLIGORS)
        if items is None:
            return None
        normalized = []
        for index, obligor in enumerate(items):
            item_path = join(path, index)
            if problems.mapping(obligor, item_path, {"exposure", "pd"}, set()) is None:
                continue
            exposure = problems.integer(obligor.get("exposure"), join(item_path, "exposure"), 0, INT64_MAX) \
                if "exposure" in obligor else None
            pd = problems.decimal(obligor.get("pd"), join(item_path, "pd"), Fraction(0), Fraction(1)) \
                if "pd" in obligor else None
            if exposure is not None and pd is not None:
                # pd is kept as the exact decimal the user wrote: the threshold is derived from it.
                normalized.append({"exposure": exposure, "pd": pd})
        return normalized if len(normalized) == len(items) else None

    @staticmethod
    def _quantiles(document: dict, problems: Problems, path: str) -> list[str] | None:
        items = problems.list(document["quantiles"], path, 1, MAX_QUANTILES)
        if items is None:
            return None
        normalized = []
        for index, quantile in enumerate(items):
            text = problems.decimal(quantile, join(path, index), Fraction(0), Fraction(1),
                                    low_open=True, high_open=True)
            if text is not None:
                if text in normalized:
                    problems.add(join(path, index), f"duplicate quantile {text}")
                normalized.append(text)
        return normalized if len(normalized) == len(items) else None

    def item_count(self, arguments: dict) -> int:
        return arguments["scenarios"]

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        return (stop - start) * len(arguments["obligors"])

    def thresholds(self, obligors: list[dict]) -> np.ndarray:
        """Default thresholds t_k, uint32[K]: a draw below t_k is a default."""
        return default_thresholds(obligors)

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        thresholds = self.thresholds(arguments["obligors"])
        exposures = np.array([obligor["exposure"] for obligor in arguments["obligors"]], dtype=np.int64)
        total_exposure, bins, keep = int(exposures.sum()), arguments["bins"], min(tail_size(arguments), stop - start)
        if backend.name == "numba":
            from forge_pipeline.execute import compiled  # numba is imported only where this backend was chosen

            losses = compiled.portfolio_losses(seed, thresholds, exposures, start, stop)
            loss_total, loss_max, histogram, largest = compiled.loss_summary(losses, total_exposure, bins, keep)
            return {"start": start, "stop": stop, "scenarios": stop - start, "loss_total": loss_total,
                    "loss_max": loss_max, "histogram": histogram.tolist(), "tail": largest.tolist()}
        if backend.name == "cupy":
            losses = _losses_cupy(backend, seed, thresholds, exposures, start, stop)
        else:
            losses = _losses_numpy(seed, thresholds, exposures, start, stop)
        return summarize_losses(backend, losses, start, stop, total_exposure, bins, keep)

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        count = stop - start
        return {"start": start, "stop": stop, "scenarios": count, "loss_total": 0, "loss_max": 0,
                "histogram": [count] + [0] * (arguments["bins"] - 1), "tail": [0] * min(count, tail_size(arguments))}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        scenarios = arguments["scenarios"]
        histogram = [0] * arguments["bins"]
        for result in shard_results:
            histogram = [left + right for left, right in zip(histogram, result["histogram"])]
        tail = sorted((loss for result in shard_results for loss in result["tail"]), reverse=True)
        tail = tail[: tail_size(arguments)]
        value_at_risk, expected_shortfall = {}, {}
        for quantile in arguments["quantiles"]:
            count = scenarios - quantile_rank(quantile, scenarios) + 1  # losses from the k-th to the N-th
            value_at_risk[quantile] = tail[count - 1]
            expected_shortfall[quantile] = self.expected_shortfall(tail[:count], quantile, scenarios)
        return {
            "scenarios": sum(result["scenarios"] for result in shard_results),
            "loss_total": sum(result["loss_total"] for result in shard_results),
            "loss_max": max(result["loss_max"] for result in shard_results),
            "histogram": histogram,
            "value_at_risk": value_at_risk,
            "expected_shortfall": expected_shortfall,
        }

    def expected_shortfall(self, tail: list[int], quantile: str, scenarios: int) -> dict:
        """From the N - k + 1 largest losses, descending: @1 reports their sum and count."""
        return {"tail_sum": sum(tail), "tail_count": len(tail)}

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        total_exposure = sum(obligor["exposure"] for obligor in arguments["obligors"])
        if result.get("scenarios") != count:
            problems.append(f"scenarios {result.get('scenarios')} != shard size {count}")
        if len(result.get("histogram", [])) != arguments["bins"]:
            problems.append("histogram has the wrong number of bins")
        elif sum(result["histogram"]) != count:
            problems.append("histogram counts do not sum to the shard's scenarios")
        tail = result.get("tail", [])
        if len(tail) != min(count, tail_size(arguments)) or tail != sorted(tail, reverse=True):
            problems.append("tail is not the shard's largest losses in descending order")
        if not 0 <= result.get("loss_max", -1) <= total_exposure or (tail and tail[0] != result["loss_max"]):
            problems.append("loss_max is outside [0, total exposure] or disagrees with the tail")
        if not 0 <= result.get("loss_total", -1) <= result.get("loss_max", 0) * count:
            problems.append("loss_total is outside [0, loss_max x scenarios]")
        return problems

    def benchmark_arguments(self, work_units: int) -> dict:
        obligors = [{"exposure": 1_000 + 37 * k, "pd": f"0.{(k % 9) + 1:02d}"} for k in range(100)]
        return {"scenarios": max(1, work_units // len(obligors)), "obligors": obligors, "bins": 20,
                "quantiles": ["0.99", "0.999"]}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| bin | scenarios |", "|---:|---:|"]
        rows += [f"| {index} | {count} |" for index, count in enumerate(output["histogram"])]
        var = ", ".join(f"VaR {q} = {v}" for q, v in output["value_at_risk"].items())
        return {
            "scenarios": output["scenarios"],
            "loss_total": output["loss_total"],
            "loss_max": output["loss_max"],
            "risk": var,
            "table_markdown": "\n".join(rows),
        }


class PortfolioLossV2(PortfolioLoss):
    """@2: pd 1 always defaults and pd 0 never; expected shortfall in the Acerbi–Tasche definition, exactly."""

    version = 2
    contract = "docs/primitives/portfolio_loss_v2.md"

    def thresholds(self, obligors: list[dict]) -> np.ndarray:
        """t_k = floor(pd_k * 2^32) in [0, 2^32], uint64[K]: pd 1 gives 2^32, above every 32-bit draw."""
        return np.array([math.floor(Fraction(obligor["pd"]) * (1 << 32)) for obligor in obligors], dtype=np.uint64)

    def expected_shortfall(self, tail: list[int], quantile: str, scenarios: int) -> dict:
        """ES_q = (Σ_{i<=f} L_[i] + (m - f) L_[f+1]) / m, m = N(1 - q), f = floor(m), L_[i] the i-th largest loss
        (Acerbi & Tasche 2002, on the empirical distribution) as {numerator, denominator} in lowest terms.
        f + 1 = N - ceil(qN) + 1 = len(tail), so the tail holds every loss it needs."""
        mass = scenarios * (1 - Fraction(quantile))
        whole = math.floor(mass)
        shortfall = (sum(tail[:whole]) + (mass - whole) * tail[whole]) / mass
        return {"numerator": shortfall.numerator, "denominator": shortfall.denominator}


def default_thresholds(obligors: list[dict]) -> np.ndarray:
    """@1's thresholds min(2^32 - 1, floor(pd_k * 2^32)), uint32[K]."""
    return np.array([min((1 << 32) - 1, math.floor(Fraction(obligor["pd"]) * (1 << 32))) for obligor in obligors],
                    dtype=np.uint32)


def quantile_rank(quantile: str, scenarios: int) -> int:
    """k = ceil(q * N): the 1-based rank of the value-at-risk loss in ascending order."""
    return max(1, math.ceil(Fraction(quantile) * scenarios))


def tail_size(arguments: dict) -> int:
    return max(arguments["scenarios"] - quantile_rank(q, arguments["scenarios"]) + 1 for q in arguments["quantiles"])


def _losses_numpy(seed: int, thresholds: np.ndarray, exposures: np.ndarray, start: int, stop: int) -> np.ndarray:
    obligors = len(exposures)
    losses = np.empty(stop - start, dtype=np.int64)
    rows_per_chunk = max(1, CHUNK_WORDS // obligors)
    for first in range(start, stop, rows_per_chunk):
        last = min(stop, first + rows_per_chunk)
        words = philox_words(seed, 0, first * obligors, (last - first) * obligors).reshape(last - first, obligors)
        defaults = words < thresholds
        losses[first - start : last - start] = np.where(defaults, exposures, 0).sum(axis=1, dtype=np.int64)
    return losses


def _losses_cupy(backend: Backend, seed: int, thresholds: np.ndarray, exposures: np.ndarray,
                 start: int, stop: int) -> Any:
    xp = backend.xp
    losses = xp.empty(stop - start, dtype=xp.int64)
    # uint32 thresholds are @1's, uint64 (up to 2^32) @2's: one kernel template, two instances.
    kernel = raw_kernel("portfolio_loss.cu", "forge_portfolio_loss" if thresholds.dtype == np.uint32
                        else "forge_portfolio_loss_wide")
    grid, block = launch_geometry(stop - start)
    kernel(grid, block, (np.uint64(seed), xp.asarray(thresholds), xp.asarray(exposures),
                         np.int64(len(exposures)), np.int64(start), np.int64(stop - start), losses))
    return losses


def summarize_losses(backend: Backend, losses: Any, start: int, stop: int, total_exposure: int,
                     bins: int, keep: int) -> dict:
    """Histogram, sums, max and the `keep` largest losses; integer ops only, the same code on NumPy and CuPy."""
    xp = backend.xp
    if total_exposure == 0:
        bin_index = xp.zeros(losses.shape, dtype=xp.int64)
    else:
        bin_index = xp.minimum(bins - 1, (losses * bins) // total_exposure)
    histogram = xp.bincount(bin_index, minlength=bins)
    largest = xp.sort(losses)[::-1][:keep]
    return {
        "start": start,
        "stop": stop,
        "scenarios": stop - start,
        "loss_total": int(losses.sum(dtype=xp.int64)),
        "loss_max": int(losses.max()),
        "histogram": [int(count) for count in backend.to_host(histogram)],
        "tail": [int(loss) for loss in backend.to_host(largest)],
    }
