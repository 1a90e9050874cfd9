import copy

import numpy as np
import pytest
from primitive_helpers import (
    assert_benchmark_sized, assert_integer_only_kernel, contract_word, json_native, scaffolding,
)

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.primitives.topk_similarity import (MAX_DIMENSION, TopkSimilarity, embedding_rows,
                                                               similarity_scores)

PRIMITIVE = TopkSimilarity()
normalized, refusals, run = scaffolding(PRIMITIVE)
INLINE = {"dimension": 3, "top_k": 3,
          "corpus": [[1, 2, 3], [-128, 127, 0], [3, 2, 1], [1, 2, 3], [0, 0, 0], [-1, -2, -3], [2, 2, 2]],
          "queries": [[1, 1, 1], [-128, -128, -128], [0, 0, 0]]}
GENERATED = {"dimension": 37, "top_k": 5, "generate": {"documents": 1_003, "queries": 7, "seed": 0xC0FFEE}}


def generated_reference(seed, stream, rows, dimension):
    """The embedding rule read literally: word r*d + c of the stream, one Philox block per word, (w >> 24) - 128."""
    return [[(contract_word(seed, stream, row * dimension + component) >> 24) - 128 for component in range(dimension)]
            for row in range(rows)]


def loop_reference(corpus, queries, top_k):
    """Dot products and ranking read literally, in Python integers."""
    results = []
    for query in queries:
        scores = [sum(a * b for a, b in zip(query, document)) for document in corpus]
        order = sorted(range(len(corpus)), key=lambda document: (-scores[document], document))
        results.append([[document, scores[document]] for document in order[: min(top_k, len(corpus))]])
    return {"documents": len(corpus), "queries": len(queries), "dimension": len(queries[0]), "results": results}


def test_inline_output_matches_a_plain_python_loop():
    """Tiny inline corpus with duplicate documents, extreme int8 values and an all-zero query: exact match."""
    assert run(normalized(INLINE), 2) == loop_reference(INLINE["corpus"], INLINE["queries"], 3)


def test_generated_embeddings_are_the_documented_philox_map():
    """Generated documents (stream 0) and queries (stream 1) equal a word-by-word Python reading of the rule."""
    arguments = normalized(GENERATED)
    corpus = embedding_rows(arguments, NUMPY_BACKEND, "corpus", 500, 503).tolist()
    queries = embedding_rows(arguments, NUMPY_BACKEND, "queries", 0, 7).tolist()
    assert corpus == generated_reference(0xC0FFEE, 0, 503, 37)[500:]
    assert queries == generated_reference(0xC0FFEE, 1, 7, 37)


def test_generated_output_matches_the_plain_python_loop():
    """A generated workload's top-k equals the Python loop over independently generated embeddings."""
    document = {"dimension": 9, "top_k": 4, "generate": {"documents": 120, "queries": 3, "seed": 2**64 - 1}}
    corpus = generated_reference(2**64 - 1, 0, 120, 9)
    queries = generated_reference(2**64 - 1, 1, 3, 9)
    assert run(normalized(document), 50) == loop_reference(corpus, queries, 4)


@pytest.mark.parametrize("dimension", [1024, 1025, MAX_DIMENSION])
def test_numpy_scores_are_exact_where_float32_would_round(dimension):
    """The NumPy path's BLAS scores equal integer dot products at the extremes: 2^24 at d = 1024 (float32's
    last exact run), 2^24 + 1 at d = 1025 (float32 would round it: float64 must be used), 2^31 - 2^14
    at the largest dimension, and alternating-sign and random vectors."""
    rng = np.random.default_rng(dimension)
    extreme = np.full(dimension, -128, dtype=np.int8)
    one_off = extreme.copy()
    one_off[-1] = 1
    alternating = np.where(np.arange(dimension) % 2, 127, -128).astype(np.int8)
    rows = np.stack([extreme, one_off, alternating, rng.integers(-128, 128, dimension, dtype=np.int8)])
    expected = rows.astype(np.int64) @ rows.astype(np.int64).T
    assert similarity_scores(NUMPY_BACKEND, rows, rows).tolist() == expected.tolist()
    assert expected[0, 0] == (dimension << 14) and expected[1, 1] == ((dimension - 1) << 14) + 1


@pytest.mark.parametrize("shard_size", [1, 97, 500])
def test_shard_count_does_not_change_the_output(shard_size):
    """Shards of 1, 97 and 500 documents give the single-shard output and the same sha256 of canonical JSON."""
    arguments = normalized(GENERATED)
    whole = run(arguments, 1_003)
    sharded = run(arguments, shard_size)
    assert sharded == whole
    assert digest(sharded) == digest(whole)


def test_ties_are_broken_by_document_id_across_shards():
    """Equal scores rank by document id ascending, also when the tied documents sit in different shards."""
    document = {"dimension": 2, "top_k": 4, "corpus": [[1, 0], [0, 5], [1, 0], [1, 0], [0, 0], [1, 0]],
                "queries": [[3, 0]]}
    arguments = normalized(document)
    for shard_size in (1, 2, 6):
        assert run(arguments, shard_size)["results"] == [[[0, 3], [2, 3], [3, 3], [5, 3]]]


def test_the_largest_dimension_cannot_overflow_int32():
    """At d = 131071, all -128 gives 2^31 - 16384 and -128 x 127 gives -131071 x 16256, exactly; 131072 is refused."""
    dimension = 131_071
    document = {"dimension": dimension, "top_k": 2, "corpus": [[-128] * dimension, [127] * dimension],
                "queries": [[-128] * dimension]}
    assert run(normalized(document), 1)["results"] == [[[0, 2**31 - 16_384], [1, -dimension * 16_256]]]
    assert "<= 131071" in refusals({**document, "dimension": 131_072})["arguments.dimension"]


@pytest.mark.parametrize("change, path, fragment", [
    ({"dimension": 0}, "arguments.dimension", ">= 1"),
    ({"top_k": 0}, "arguments.top_k", ">= 1"),
    ({"top_k": 1001}, "arguments.top_k", "<= 1000"),
    ({"corpus": [[1, 2, 3], [1, 2]]}, "arguments.corpus[1]", "3 components"),
    ({"corpus": [[1, 2, 300]]}, "arguments.corpus[0][2]", "[-128, 127]"),
    ({"queries": [[1, 2.5, 3]]}, "arguments.queries[0][1]", "[-128, 127]"),
    ({"queries": [[1, True, 3]]}, "arguments.queries[0][1]", "[-128, 127]"),
    ({"queries": [7]}, "arguments.queries[0]", "must be a list"),
    ({"corpus": []}, "arguments.corpus", "must not be empty"),
    ({"queries": [[0, 0, 0]] * 1025}, "arguments.queries", "at most 1024"),
    ({"corpus": [[0, 0, 0]] * 400_000}, "arguments.corpus", "at most"),
    ({"shape": "round"}, "arguments.shape", "unknown field"),
    ({"generate": {"documents": 4, "queries": 1, "seed": 1}}, "arguments.generate", "not both"),
])
def test_bad_inline_arguments_are_refused_with_field_paths(change, path, fragment):
    """Each bad inline document is refused, and the problem names the offending field path."""
    found = refusals({**copy.deepcopy(INLINE), **change})
    assert path in found and fragment in found[path], found


@pytest.mark.parametrize("change, path, fragment", [
    ({"documents": 0}, "arguments.generate.documents", ">= 1"),
    ({"documents": 2**30 + 1}, "arguments.generate.documents", "<="),
    ({"queries": 1025}, "arguments.generate.queries", "<= 1024"),
    ({"seed": -1}, "arguments.generate.seed", ">= 0"),
    ({"seed": 2**64}, "arguments.generate.seed", "<="),
    ({"colour": 1}, "arguments.generate.colour", "unknown field"),
])
def test_bad_generated_arguments_are_refused_with_field_paths(change, path, fragment):
    """Each bad generate block is refused, and the problem names the offending field path."""
    found = refusals({**GENERATED, "generate": {**GENERATED["generate"], **change}})
    assert path in found and fragment in found[path], found


def test_missing_or_oversized_embeddings_are_refused():
    """No embeddings, half an inline pair, or a generated query matrix over 2^22 values are each named."""
    assert "needs either generate" in refusals({"dimension": 3, "top_k": 1})["arguments"]
    assert "is required" in refusals({"dimension": 3, "top_k": 1, "corpus": [[1, 2, 3]]})["arguments.queries"]
    wide = {"dimension": 8_192, "top_k": 1, "generate": {"documents": 1, "queries": 1_024, "seed": 1}}
    assert "queries x dimension" in refusals(wide)["arguments.generate.queries"]


def test_shard_checks_pass_real_results_and_catch_tampering():
    """check_shard accepts a real shard and the lazy shape, and flags a wrong count, order, range and bound."""
    arguments = normalized(GENERATED)
    shard = PRIMITIVE.execute_shard(arguments, 1, 100, 400, NUMPY_BACKEND)
    assert PRIMITIVE.check_shard(arguments, 100, 400, shard) == []
    assert PRIMITIVE.check_shard(arguments, 100, 400, PRIMITIVE.plausible_result(arguments, 100, 400)) == []
    tampered = [copy.deepcopy(shard) for _ in range(5)]
    tampered[0]["documents"] ^= 1
    tampered[1]["results"][0].reverse()
    tampered[2]["results"][1][0][0] = 99  # a document outside [100, 400)
    tampered[3]["results"][2][0][1] = 37 * 16_384 + 1  # beyond any int8 dot product of dimension 37
    tampered[4]["results"].pop()
    for index, result in enumerate(tampered):
        assert PRIMITIVE.check_shard(arguments, 100, 400, result) != [], index


def test_results_are_json_native_integers():
    """Shard and merged outputs hold only dicts, lists and Python ints (no floats, no NumPy scalars)."""
    arguments = normalized(GENERATED)
    shard = PRIMITIVE.execute_shard(arguments, 1, 0, 300, NUMPY_BACKEND)
    assert json_native(shard) and json_native(PRIMITIVE.merge(arguments, [shard]))
    assert json_native(arguments) and json_native(normalized(INLINE))


def test_benchmark_arguments_are_valid_and_sized_to_the_request():
    """benchmark_arguments(units) validates and bills within one document's cost of the request."""
    for units in (1, 10**9):
        assert_benchmark_sized(PRIMITIVE, normalized, units)


def test_output_summary_has_facts_and_a_markdown_table():
    """The UI summary reports sizes and the best score, and renders each top entry as a table row."""
    summary = PRIMITIVE.output_summary(run(normalized(INLINE), 3))
    assert (summary["documents"], summary["queries"], summary["dimension"]) == (7, 3, 3)
    assert summary["best_score"] == max(top[0][1] for top in loop_reference(INLINE["corpus"], INLINE["queries"], 3)[
        "results"])
    assert summary["table_markdown"].splitlines()[0] == "| query | rank | document | score |"
    assert len(summary["table_markdown"].splitlines()) == 2 + 3 * 3


@pytest.mark.gpu
@pytest.mark.parametrize("documents, queries, dimension, start", [
    (1, 1, 1, 0), (10_007, 37, 77, 5), (300_001, 5, 300, 1_000), (4_099, 17, 1_000, 0)])
def test_cupy_path_matches_numpy_bit_for_bit(documents, queries, dimension, start):
    """Device generation and tiled int32 scores give the NumPy shard exactly: many tiles, ragged edges, chunks."""
    arguments = normalized({"dimension": dimension, "top_k": 9,
                            "generate": {"documents": start + documents, "queries": queries, "seed": 0xFEEDFACE}})
    gpu = PRIMITIVE.execute_shard(arguments, 1, start, start + documents, select_backend("gpu"))
    assert gpu == PRIMITIVE.execute_shard(arguments, 1, start, start + documents, NUMPY_BACKEND)


@pytest.mark.gpu
def test_cupy_path_matches_numpy_on_inline_embeddings():
    """Inline embeddings uploaded to the device rank exactly as on NumPy, ties and extremes included."""
    arguments = normalized(INLINE)
    for start, stop in ((0, 7), (2, 5)):
        gpu = PRIMITIVE.execute_shard(arguments, 1, start, stop, select_backend("gpu"))
        assert gpu == PRIMITIVE.execute_shard(arguments, 1, start, stop, NUMPY_BACKEND)


def test_kernel_is_integer_only(tmp_path):
    """kernels/topk_similarity.cu names no floating-point type and compiles to float-free PTX with both entries."""
    entries = ["forge_int8_embeddings", "forge_topk_similarity_scores"]
    assert_integer_only_kernel("topk_similarity.cu", entries, tmp_path)
