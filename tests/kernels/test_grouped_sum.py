import numpy as np
import pytest
from primitive_helpers import assert_integer_only_kernel, contract_word, scaffolding

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.primitives.grouped_sum import CHUNK_ROWS, GroupedSum
from forge_pipeline.intake.problems import INT64_MAX, Problems, RequestInvalid

PRIMITIVE = GroupedSum()
normalized, refusals, run = scaffolding(PRIMITIVE)


def generated(rows=1_000, keys=13, value_max=1_000, seed=0xA5A5_0000_1234_5678):
    return normalized({"generate": {"rows": rows, "keys": keys, "value_max": value_max, "seed": seed}})


def dictionary_reference(pairs):
    sums, counts = {}, {}
    for key, value in pairs:
        sums[key] = sums.get(key, 0) + value
        counts[key] = counts.get(key, 0) + 1
    keys = sorted(sums)
    return {"rows": len(pairs), "groups": len(keys), "total": sum(sums.values()), "keys": keys,
            "sums": [sums[key] for key in keys], "counts": [counts[key] for key in keys]}


def generated_pairs(rows, keys, value_max, seed):
    """The contract read literally: word r of streams 0 and 1, one Philox block per word, multiply-shift."""
    return [((contract_word(seed, 0, r) * keys) >> 32, (contract_word(seed, 1, r) * (value_max + 1)) >> 32)
            for r in range(rows)]


def test_generated_output_matches_a_plain_python_loop():
    """Per-key sums and counts equal a dictionary loop over the contract's Philox rows."""
    arguments = generated(rows=600, keys=7, value_max=2**32 - 1, seed=2**64 - 1)
    assert run(arguments, 250) == dictionary_reference(generated_pairs(600, 7, 2**32 - 1, 2**64 - 1))


def test_inline_rows_with_negative_values_and_extreme_keys():
    """Inline rows sum exactly per key, negative values and int64 extreme keys included, sorted by key."""
    pairs = [[5, 10], [-(2**63), -3], [5, -25], [2**63 - 1, 7], [0, 0], [-(2**63), 4], [5, 1]]
    arguments = normalized({"rows": pairs})
    assert run(arguments, 3) == dictionary_reference(pairs)
    assert run(arguments, 3)["sums"] == [1, 0, -14, 7]


@pytest.mark.parametrize("shard_size", [1, 97, 1_000])
def test_shard_count_does_not_change_the_output(shard_size):
    """Any shard size gives the digest of one shard: rows are addressed by global index."""
    arguments = generated(rows=1_000, keys=50)
    assert digest(run(arguments, shard_size)) == digest(run(arguments, 1_000))


def test_chunks_inside_a_shard_do_not_change_the_output():
    """A shard longer than one chunk (dense and sorted paths) equals the same rows split into shards at the seam."""
    arguments = generated(rows=CHUNK_ROWS + 5, keys=3, value_max=9)
    assert digest(run(arguments, CHUNK_ROWS + 5)) == digest(run(arguments, CHUNK_ROWS // 2 + 1))


def test_overflow_bound_is_enforced_exactly_at_the_edge():
    """rows x max|value| may equal 2^63 - 1 but not exceed it; the sum at the edge is exact."""
    assert run(normalized({"rows": [[1, INT64_MAX]]}), 1)["sums"] == [INT64_MAX]
    for document, path in [({"rows": [[1, 2**62], [2, -(2**62)]]}, "arguments.rows"),
                           ({"generate": {"rows": 2**31 + 1, "keys": 1, "value_max": 2**32 - 1, "seed": 0}},
                            "arguments.generate.value_max")]:
        problems = Problems()
        assert PRIMITIVE.normalize_arguments(document, problems) is None
        assert [problem.path for problem in problems.found] == [path]
    assert generated(rows=2**31 - 1, keys=1, value_max=2**32 - 1)  # (2^31 - 1)(2^32 - 1) < 2^63


def test_bad_arguments_are_refused_with_field_paths():
    """Every problem is named by its path: sizes, seeds, pairs, value range, two sources, unknown fields."""
    cases = [
        ({"generate": {"rows": 0, "keys": 100_001, "value_max": 2**32, "seed": 2**64}},
         {"arguments.generate.rows", "arguments.generate.keys", "arguments.generate.value_max",
          "arguments.generate.seed"}),
        ({"generate": {"rows": 1, "keys": 1, "value_max": 1, "seed": 1, "extra": 1}}, {"arguments.generate.extra"}),
        ({"rows": [[1, 2], [3], "x", [True, 1], [1, -(2**63)], [2**63, 0]]},
         {"arguments.rows[1]", "arguments.rows[2]", "arguments.rows[3][0]", "arguments.rows[4][1]",
          "arguments.rows[5][0]"}),
        ({"rows": []}, {"arguments.rows"}),
        ({"rows": [[1, 2]], "generate": {"rows": 1, "keys": 1, "value_max": 1, "seed": 1}}, {"arguments"}),
        ({"parquet": {"path": "nowhere.csv"}}, {"arguments.parquet.path"}),
        ({"table": []}, {"arguments.table", "arguments"}),
        ([], {"arguments"}),
    ]
    for document, paths in cases:
        assert set(refusals(document)) == paths, document


def test_shard_checks_catch_a_tampered_result():
    """The spot check refuses lost rows, unsorted or foreign keys, a wrong total, a dropped key and a lazy result."""
    arguments = generated(rows=200, keys=5)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 200, NUMPY_BACKEND)
    assert PRIMITIVE.check_shard(arguments, 0, 200, shard) == []
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "counts": [shard["counts"][0] - 1] + shard["counts"][1:]})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys": shard["keys"][::-1]})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "total": shard["total"] + 1})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys": [k + 5 for k in shard["keys"]]})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "sums": [1.5] + shard["sums"][1:]})
    assert PRIMITIVE.check_shard(arguments, 0, 200, PRIMITIVE.plausible_result(arguments, 0, 200))
    inline = normalized({"rows": [[7, 1], [8, 2], [7, 3]]})
    assert PRIMITIVE.check_shard(inline, 0, 3, {**PRIMITIVE.execute_shard(inline, 0, 0, 3, NUMPY_BACKEND),
                                                "keys": [7], "sums": [6], "counts": [3]})


def test_results_are_json_native_and_the_hooks_are_sound():
    """Results hash as canonical JSON; work units are rows; the benchmark document validates."""
    arguments = generated(rows=50)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 50, NUMPY_BACKEND)
    assert all(type(value) is int for field in ("keys", "sums", "counts") for value in shard[field])
    output = PRIMITIVE.merge(arguments, [shard])
    digest(output)
    assert PRIMITIVE.work_units(arguments, 10, 50) == 40
    assert PRIMITIVE.normalize_arguments(PRIMITIVE.benchmark_arguments(10**7), Problems()) is not None
    assert "table_markdown" in PRIMITIVE.output_summary(output)


def test_parquet_source_sums_like_the_same_rows_inline(tmp_path):
    """A pinned Parquet file gives the inline result; a changed file or a float column is refused by path."""
    polars = pytest.importorskip("polars")
    pairs = [[3, 10], [1, -4], [3, 5], [2, 7], [1, 1]] * 40
    path = tmp_path / "rows.parquet"
    polars.DataFrame({"account": [k for k, _ in pairs], "cents": [v for _, v in pairs]},
                     schema={"account": polars.Int32, "cents": polars.Int64}).write_parquet(path)
    arguments = normalized({"parquet": {"path": str(path), "key_column": "account", "value_column": "cents"}}, tmp_path)
    assert arguments["parquet"]["rows"] == 200
    assert normalized(arguments, tmp_path) == arguments  # re-validation of the stored request is idempotent
    assert run(arguments, 33) == run(normalized({"rows": pairs}), 200)

    polars.DataFrame({"account": [1], "cents": [2]}).write_parquet(path)
    with pytest.raises(RequestInvalid, match=r"arguments\.parquet\.sha256"):
        PRIMITIVE.execute_shard(arguments, 0, 0, 1, NUMPY_BACKEND)

    floats = tmp_path / "floats.parquet"
    polars.DataFrame({"key": [1, None], "value": [0.5, 1.5]}).write_parquet(floats)
    problems = Problems(input_area=tmp_path)
    assert PRIMITIVE.normalize_arguments({"parquet": {"path": str(floats)}}, problems) is None
    assert [problem.path for problem in problems.found] == ["arguments.parquet.value_column"]
    problems = Problems(input_area=tmp_path)
    assert PRIMITIVE.normalize_arguments({"parquet": {"path": str(floats), "value_column": "missing"}},
                                         problems) is None
    assert [problem.path for problem in problems.found] == ["arguments.parquet.value_column"]


@pytest.mark.gpu
@pytest.mark.parametrize("rows, keys, start", [(1, 1, 0), (300_007, 1, 5), (CHUNK_ROWS + 70_001, 100_000, 1_000_003)])
def test_cupy_path_matches_numpy_bit_for_bit(rows, keys, start):
    """Atomic adds on the device give the NumPy shard exactly: one hot key, many keys, chunk seams, ragged tails."""
    backend = select_backend("gpu")
    arguments = generated(rows=start + rows, keys=keys, value_max=2**32 - 1, seed=0xFEEDFACECAFEBEEF)
    assert (PRIMITIVE.execute_shard(arguments, 0, start, start + rows, backend)
            == PRIMITIVE.execute_shard(arguments, 0, start, start + rows, NUMPY_BACKEND))


@pytest.mark.gpu
def test_cupy_path_matches_numpy_on_inline_rows():
    """Arbitrary int64 keys (sorted to dense indices on the device) and negative values sum identically."""
    backend = select_backend("gpu")
    rng = np.random.default_rng(5)
    keys = rng.integers(-(2**63), 2**63 - 1, size=300, dtype=np.int64)
    pairs = [[int(keys[i % 300]), int(v)] for i, v in enumerate(rng.integers(-(10**12), 10**12, size=20_011))]
    arguments = normalized({"rows": pairs})
    assert (PRIMITIVE.execute_shard(arguments, 0, 11, 20_011, backend)
            == PRIMITIVE.execute_shard(arguments, 0, 11, 20_011, NUMPY_BACKEND))


def test_kernel_is_integer_only(tmp_path):
    """kernels/grouped_sum.cu names no floating-point type and compiles to float-free PTX with its scatter entry."""
    assert_integer_only_kernel("grouped_sum.cu", ["forge_grouped_sum_scatter"], tmp_path)
