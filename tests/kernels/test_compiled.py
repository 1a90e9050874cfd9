"""The compiled CPU backend (numba) against the NumPy reference, and the contracts of the @2 versions.

NumPy (and numba) imports only, like the rest of tests/kernels: these run on a GPU machine without
Dagster, Polars or SQLAlchemy. Parity is bit for bit: results compare with ==, never a tolerance.
"""

import math
import os
from fractions import Fraction

os.environ.setdefault("NUMBA_NUM_THREADS", "4")  # several thread counts even on a 2-core machine

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from forge_pipeline.canonical import digest  # noqa: E402
from forge_pipeline.execute import compiled  # noqa: E402
from forge_pipeline.execute.backend import NUMBA_BACKEND, NUMPY_BACKEND, cpu_backend, select_backend  # noqa: E402
from forge_pipeline.execute.philox import philox_words  # noqa: E402
from forge_pipeline.execute.primitives import PRIMITIVES  # noqa: E402
from forge_pipeline.execute.primitives.image_filter import ImageFilter, ImageFilterV2, input_images  # noqa: E402
from forge_pipeline.execute.primitives.personalized_pagerank import (  # noqa: E402
    PersonalizedPagerank, PersonalizedPagerankV2)
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss, PortfolioLossV2  # noqa: E402
from tests.kernels.primitive_helpers import assert_integer_only_kernel, scaffolding  # noqa: E402

THREAD_COUNTS = sorted({1, 2, 3, numba.config.NUMBA_NUM_THREADS} & set(range(1, numba.config.NUMBA_NUM_THREADS + 1)))
ODD_SHARDS = (1, 7, 13)  # shard sizes that leave ragged tails


@pytest.fixture(params=THREAD_COUNTS)
def threads(request):
    """Runs the test with numba limited to `threads` threads, restoring the default afterwards."""
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_cpu_agents_use_the_compiled_backend_where_numba_is_installed():
    """With numba installed, FORGE_DEVICE=cpu (a CPU Agent) selects the compiled backend, recorded as "numba"."""
    assert cpu_backend() is NUMBA_BACKEND
    assert select_backend("cpu").name == "numba"


@pytest.mark.parametrize("first_word, count", [(0, 0), (0, 1), (3, 5), (5, 4 * compiled.FILL_BLOCKS + 3),
                                               ((1 << 34) + 1, 10_001)])
def test_compiled_philox_matches_the_numpy_reference(threads, first_word, count):
    """Compiled Philox words equal the NumPy path's at unaligned starts, across fill pieces, for every thread count."""
    seed = 0xFEEDFACECAFEBEEF
    assert np.array_equal(compiled.philox_words(seed, 9, first_word, count), philox_words(seed, 9, first_word, count))


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_compiled_equals_numpy_on_odd_shards(threads, name):
    """Every primitive's shard results, on odd shard sizes, are the same bits on numba as on NumPy."""
    primitive = PRIMITIVES[name]
    normalized, _, run = scaffolding(primitive)
    arguments = normalized(primitive.benchmark_arguments(300_000))
    count = primitive.item_count(arguments)
    for shard_size in ODD_SHARDS:
        stop = min(count, 3 * shard_size + 2)
        for start in range(0, stop, shard_size):
            end = min(stop, start + shard_size)
            assert primitive.execute_shard(arguments, 5, start, end, NUMBA_BACKEND) == \
                primitive.execute_shard(arguments, 5, start, end, NUMPY_BACKEND), (shard_size, start)
    assert run(arguments, count // 3 + 1, NUMBA_BACKEND) == run(arguments, count // 3 + 1, NUMPY_BACKEND)


def test_portfolio_loss_compiled_spans_many_pieces_and_buffers(threads):
    """A shard of many fused pieces (K = 3: 87,381 scenarios a piece) and an unaligned start gives NumPy's bits."""
    primitive = PortfolioLossV2()
    normalized, _, _ = scaffolding(primitive)
    arguments = normalized({"scenarios": 400_000, "bins": 11, "quantiles": ["0.9"],
                            "obligors": [{"exposure": 10, "pd": "0.5"}, {"exposure": 7, "pd": "1"},
                                         {"exposure": 3, "pd": "0.001"}]})
    assert primitive.execute_shard(arguments, 3, 1, 200_001, NUMBA_BACKEND) == \
        primitive.execute_shard(arguments, 3, 1, 200_001, NUMPY_BACKEND)


# Output digests of every @1 primitive (benchmark_arguments(200_000), three shards, seed 12345) computed by the
# NumPy path at commit e5f400c, before the @2 versions and the compiled backend existed: a version never changes.
V1_OUTPUT_DIGESTS = {
    "aggregation/grouped_sum@1": "e266abd59d18e225d61531b8be484701ee2d560166bdf29d2f042aadeda691dc",
    "graph_propagation/personalized_pagerank@1": "0d80a920f4722e97b0d26ec6c6868739086af97133d2821d8a52791636983703",
    "media_transformation/image_filter@1": "e6c7b92b68f85e0b33f9be4c7e5765cffe7a12ccad362510173a7bc28378b109",
    "memory_operations/sort_dedupe@1": "26239107d3f8666353be17928792c3c3d3e68acdc0760e2179776c6469a8dc90",
    "probabilistic_simulation/portfolio_loss@1": "9e0e8f2067bc6b752487695545983d859f10dce3f36fa1292d4e39f25ee4f64e",
    "search_ranking/topk_similarity@1": "1a2b53b008f414bb83fb4f0d4e8037c5d6d10bcf4e2fcf7e5a6e7e45a14b0669",
}


@pytest.mark.parametrize("backend", [NUMPY_BACKEND, NUMBA_BACKEND], ids=lambda backend: backend.name)
@pytest.mark.parametrize("name", sorted(V1_OUTPUT_DIGESTS))
def test_v1_outputs_are_those_recorded_before_the_new_versions(name, backend):
    """Every @1 primitive still gives the output digest its code gave before @2 and numba, on either CPU backend."""
    primitive = PRIMITIVES[name]
    normalized, _, _ = scaffolding(primitive)
    arguments = normalized(primitive.benchmark_arguments(200_000))
    count = primitive.item_count(arguments)
    size = count // 3 + 1
    shards = [primitive.execute_shard(arguments, 12345, start, min(count, start + size), backend)
              for start in range(0, count, size)]
    assert digest(primitive.merge(arguments, shards)) == V1_OUTPUT_DIGESTS[name]


# portfolio_loss@2


def test_portfolio_loss_v2_pd_one_always_defaults_and_pd_zero_never():
    """@2: pd 1 is a threshold of 2^32 (every draw below it), pd 0 of 0; @1 caps pd 1 at 2^32 - 1."""
    obligors = [{"exposure": 7, "pd": "1"}, {"exposure": 5, "pd": "0"}]
    assert PortfolioLossV2().thresholds(obligors).tolist() == [1 << 32, 0]
    assert PortfolioLoss().thresholds(obligors).tolist() == [(1 << 32) - 1, 0]
    normalized, _, run = scaffolding(PortfolioLossV2())
    arguments = normalized({"scenarios": 1000, "obligors": obligors, "bins": 4, "quantiles": ["0.5"]})
    for backend in (NUMPY_BACKEND, NUMBA_BACKEND):
        output = run(arguments, 333, backend)
        assert output["loss_total"] == 7 * 1000 and output["loss_max"] == 7 and output["histogram"] == [0, 0, 1000, 0]  # 7 * 4 // 12 = 2


def acerbi_tasche(losses, quantile):
    """ES_q = 1/(1-q) ∫_q^1 VaR_u du on the empirical distribution, VaR_u = the ceil(uN)-th smallest loss: the
    integral read literally, interval by interval, in exact fractions (independent of the merge's formula)."""
    ordered, n, q = sorted(losses), len(losses), Fraction(quantile)
    integral = sum(loss * max(Fraction(0), Fraction(i, n) - max(q, Fraction(i - 1, n)))
                   for i, loss in enumerate(ordered, start=1))
    return integral / (1 - q)


@pytest.mark.parametrize("scenarios, quantiles", [(1000, ["0.99", "0.995"]), (997, ["0.9", "0.333"]),
                                                  (10, ["0.75"])])
def test_portfolio_loss_v2_expected_shortfall_is_acerbi_tasche_exactly(scenarios, quantiles):
    """@2's expected shortfall (seed 1, as `run` uses) is the Acerbi–Tasche value as an exact fraction in lowest terms, including q·N not
    whole; @1 keeps its undivided tail sum."""
    obligors = [{"exposure": 100 + 13 * k, "pd": f"0.{k + 1}"} for k in range(6)]
    document = {"scenarios": scenarios, "obligors": obligors, "bins": 3, "quantiles": quantiles}
    normalized, _, run = scaffolding(PortfolioLossV2())
    arguments = normalized(document)
    losses = compiled.portfolio_losses(1, PortfolioLossV2().thresholds(arguments["obligors"]),
                                       np.array([o["exposure"] for o in obligors]), 0, scenarios).tolist()
    output = run(arguments, 101)
    for quantile in quantiles:
        expected = acerbi_tasche(losses, quantile)
        assert output["expected_shortfall"][quantile] == {"numerator": expected.numerator,
                                                          "denominator": expected.denominator}
        assert Fraction(expected) >= output["value_at_risk"][quantile]
    v1_normalized, _, v1_run = scaffolding(PortfolioLoss())
    assert set(v1_run(v1_normalized(document), 101)["expected_shortfall"][quantiles[0]]) == {"tail_sum",
                                                                                              "tail_count"}


# image_filter@2


def exact_filter(image):
    """The 2x2 mean of the 3x3 [1,2,1;2,4,2;1,2,1]/16 blur (edges replicated), in fractions, rounded half up once."""
    height, width = image.shape
    pixel = lambda r, c: int(image[min(max(r, 0), height - 1), min(max(c, 0), width - 1)])  # noqa: E731
    weights = {(-1, -1): 1, (-1, 0): 2, (-1, 1): 1, (0, -1): 2, (0, 0): 4, (0, 1): 2, (1, -1): 1, (1, 0): 2, (1, 1): 1}
    out = np.empty((height // 2, width // 2), dtype=np.int64)
    for y in range(height // 2):
        for x in range(width // 2):
            mean = sum(Fraction(w * pixel(2 * y + i + dr, 2 * x + j + dc), 16 * 4)
                       for i in (0, 1) for j in (0, 1) for (dr, dc), w in weights.items())
            out[y, x] = math.floor(mean + Fraction(1, 2))
    return out


def test_image_filter_v2_is_one_rounding_of_the_exact_result(threads):
    """@2 equals the exact blur-and-downsample rounded once, on NumPy and numba; @1 is biased upward against it."""
    normalized, _, _ = scaffolding(ImageFilterV2())
    arguments = normalized({"generate": {"count": 3, "height": 17, "width": 12, "seed": 4}})
    images = input_images(arguments, 0, 3, NUMPY_BACKEND)
    expected = np.stack([exact_filter(image) for image in images])
    from forge_pipeline.execute.primitives.image_filter import filtered_images
    for backend in (NUMPY_BACKEND, NUMBA_BACKEND):
        assert filtered_images(arguments, 0, 3, backend, single_rounding=True).tolist() == expected.tolist()
    twice = filtered_images(arguments, 0, 3, NUMBA_BACKEND).astype(np.int64) - expected
    # Double rounding moves pixels by at most one, and upward more often than downward: @1's bias.
    assert np.abs(twice).max() == 1 and (twice == 1).sum() > 2 * (twice == -1).sum()
    v1, v2 = (primitive.execute_shard(arguments, 0, 0, 3, NUMBA_BACKEND) for primitive in (ImageFilter(),
                                                                                         ImageFilterV2()))
    assert v1["digests"] != v2["digests"]


# personalized_pagerank@2


def exact_pagerank(nodes, edges, source, iterations, damping):
    """The @2 iteration in exact fractions (no flooring): the real-arithmetic value its scores approximate."""
    degree = [0] * nodes
    for origin, _ in edges:
        degree[origin] += 1
    rank = [Fraction(0)] * nodes
    rank[source] = Fraction(1)
    for _ in range(iterations):
        following = [Fraction(0)] * nodes
        for origin, target in edges:
            following[target] += rank[origin] * damping / degree[origin]
        following[source] += 1 - sum(following)
        rank = following
    return rank


def test_pagerank_v2_scores_are_within_one_unit_of_exact_arithmetic(threads):
    """Every reported @2 score is within one unit (2^-24) of the exact iteration, numba equal to NumPy, and the
    reported scores of the whole graph sum to 2^24 within half a unit per node."""
    edges = [[0, 1], [0, 2], [1, 2], [2, 0], [2, 3], [3, 4], [4, 0], [4, 1], [4, 5], [5, 5], [6, 2]]
    document = {"nodes": 8, "edges": edges, "sources": [0, 3, 6, 7], "iterations": 30,
                "damping": {"numerator": 17, "denominator": 20}, "top_k": 8}
    normalized, _, run = scaffolding(PersonalizedPagerankV2())
    arguments = normalized(document)
    output = run(arguments, 3, NUMBA_BACKEND)
    assert output == run(arguments, 3, NUMPY_BACKEND) and output["score_scale"] == 1 << 24
    for entry in output["results"]:
        exact = exact_pagerank(8, edges, entry["source"], 30, Fraction(17, 20))
        assert all(abs(score - exact[node] * (1 << 24)) < 1 for node, score in entry["top"])
        assert abs(sum(score for _, score in entry["top"]) - (1 << 24)) <= 8 // 2
    v1 = scaffolding(PersonalizedPagerank())[2](scaffolding(PersonalizedPagerank())[0](document), 3)
    assert v1["score_scale"] == 1 << 32


def test_pagerank_v2_does_not_overflow_at_the_largest_damping_denominator():
    """r·numerator would pass 2^63 at r = 2^62 and a 2^30 denominator; @2 splits the product, so the scores stay
    non-negative and the whole graph still sums to 2^24 within rounding."""
    normalized, _, run = scaffolding(PersonalizedPagerankV2())
    arguments = normalized({"nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]], "sources": [0], "iterations": 5,
                            "damping": {"numerator": (1 << 30) - 1, "denominator": 1 << 30}, "top_k": 3})
    for backend in (NUMPY_BACKEND, NUMBA_BACKEND):
        top = run(arguments, 1, backend)["results"][0]["top"]
        assert all(score >= 0 for _, score in top) and abs(sum(s for _, s in top) - (1 << 24)) <= 1


def test_v2_kernel_entries_are_integer_only(tmp_path):
    """The @2 entries (wide thresholds, single rounding) compile to float-free PTX beside @1's."""
    assert_integer_only_kernel("portfolio_loss.cu", ["forge_portfolio_loss", "forge_portfolio_loss_wide"], tmp_path)
    assert_integer_only_kernel("image_filter.cu", ["forge_image_filter", "forge_image_filter_single_rounding"],
                               tmp_path)
