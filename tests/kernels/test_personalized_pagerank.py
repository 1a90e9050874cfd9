import copy

import pytest
from primitive_helpers import (
    assert_benchmark_sized, assert_integer_only_kernel, contract_word, json_native, scaffolding,
)

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.primitives.personalized_pagerank import PersonalizedPagerank, rmat_edges

PRIMITIVE = PersonalizedPagerank()
normalized, refusals, run = scaffolding(PRIMITIVE)
SCALE = 2**32  # written out again here: the test reads the contract, not the module
INLINE = {"nodes": 6, "edges": [[0, 1], [0, 2], [1, 2], [2, 0], [2, 3], [3, 3], [3, 0], [0, 1], [4, 0], [2, 5]],
          "sources": [0, 5, 3, 4], "iterations": 7, "damping": {"numerator": 85, "denominator": 100}, "top_k": 4}
GENERATED = {"generate": {"kind": "rmat", "nodes": 50, "edges": 300, "seed": 0xDEADBEEF12345678},
             "sources": [49, 0, 7, 13, 21, 34, 2, 1, 40, 8, 30], "iterations": 9,
             "damping": {"numerator": 7, "denominator": 9}, "top_k": 6}


def rmat_reference(nodes, edges, seed):
    """The R-MAT rule read literally: one Philox block per word of stream 1, Python integers."""
    levels = (nodes - 1).bit_length()
    pairs = []
    for i in range(edges):
        row = column = 0
        for level in range(levels):
            word = contract_word(seed, 1, i * levels + level)
            row_bit, column_bit = (0, 0) if word < 2448131358 else (0, 1) if word < 3264175144 else \
                (1, 0) if word < 4080218931 else (1, 1)
            row = row * 2 + row_bit
            column = column * 2 + column_bit
        pairs.append([row * nodes >> levels, column * nodes >> levels])
    return pairs


def loop_reference(nodes, edges, sources, iterations, numerator, denominator, top_k):
    """The fixed-point iteration read literally, edge by edge, in Python integers."""
    degree = [0] * nodes
    for u, _ in edges:
        degree[u] += 1
    results = []
    for source in sources:
        rank = [0] * nodes
        rank[source] = SCALE
        for _ in range(iterations):
            following = [0] * nodes
            for u, v in edges:
                following[v] += rank[u] * numerator // denominator // degree[u]
            following[source] += SCALE - sum(following)
            rank = following
        order = sorted(range(nodes), key=lambda node: (-rank[node], node))[: min(top_k, nodes)]
        results.append({"source": source, "top": [[node, rank[node]] for node in order]})
    return {"score_scale": SCALE, "sources": len(sources), "results": results}


def test_output_matches_a_plain_python_loop_over_the_contract():
    """Inline graph with a dangling node (5), a self-loop (3) and a repeated edge (0 -> 1): exact Python-loop match."""
    arguments = normalized(INLINE)
    expected = loop_reference(6, INLINE["edges"], INLINE["sources"], 7, 85, 100, 4)
    assert run(arguments, 4) == expected


def test_generated_graph_is_the_documented_rmat_rule():
    """R-MAT edges equal a word-by-word Python reading of the thresholds, levels and (id * n) >> L scaling."""
    for nodes, edges, seed in [(50, 300, 0xDEADBEEF12345678), (64, 97, 5), (1, 4, 9), (2, 33, 2**64 - 1)]:
        origins, targets = rmat_edges(nodes, edges, seed)
        assert [[int(u), int(v)] for u, v in zip(origins, targets)] == rmat_reference(nodes, edges, seed)


def test_generated_graph_output_matches_the_plain_python_loop():
    """A generated graph's PageRank equals the Python loop run over the independently generated edges."""
    spec = GENERATED["generate"]
    edges = rmat_reference(spec["nodes"], spec["edges"], spec["seed"])
    expected = loop_reference(spec["nodes"], edges, GENERATED["sources"], 9, 7, 9, 6)
    assert run(normalized(GENERATED), 5) == expected


@pytest.mark.parametrize("shard_size", [1, 3, 7])
def test_shard_count_does_not_change_the_output(shard_size):
    """Shards of 1, 3 and 7 sources give the single-shard output and the same sha256 of canonical JSON."""
    arguments = normalized(GENERATED)
    whole = run(arguments, len(GENERATED["sources"]))
    sharded = run(arguments, shard_size)
    assert sharded == whole
    assert digest(sharded) == digest(whole)


def test_hand_computed_graph_breaks_ties_by_node_id():
    """0 -> 1 at damping 1/2 splits the mass 2^31 / 2^31 (node 0 first); an isolated source keeps everything."""
    document = {"nodes": 4, "edges": [[0, 1]], "sources": [0, 2], "iterations": 1,
                "damping": {"numerator": 1, "denominator": 2}, "top_k": 10}
    output = run(normalized(document), 1)
    assert output["results"] == [
        {"source": 0, "top": [[0, 2**31], [1, 2**31], [2, 0], [3, 0]]},
        {"source": 2, "top": [[2, SCALE], [0, 0], [1, 0], [3, 0]]},
    ]


def test_dangling_mass_and_rounding_remainders_return_to_the_source():
    """Every source's scores sum to exactly 2^32 after every iteration count: no mass is created or lost."""
    for iterations in (1, 2, 13):
        arguments = normalized({**GENERATED, "iterations": iterations, "top_k": 1000,
                                "damping": {"numerator": 999_999_937, "denominator": 2**30}})
        for entry in run(arguments, 4)["results"]:
            assert sum(score for _, score in entry["top"]) == SCALE
            assert len(entry["top"]) == 50


@pytest.mark.parametrize("change, path, fragment", [
    ({"nodes": 0}, "arguments.nodes", ">= 1"),
    ({"edges": [[0, 1], [2, 9]]}, "arguments.edges[1][1]", "<= 5"),
    ({"edges": [[0, 1], [0]]}, "arguments.edges[1]", "[from, to] pair"),
    ({"edges": [[0, "1"]]}, "arguments.edges[0][1]", "integer"),
    ({"sources": [0, 6]}, "arguments.sources[1]", "<= 5"),
    ({"sources": [3, 1, 3]}, "arguments.sources[2]", "duplicate source 3"),
    ({"sources": []}, "arguments.sources", "must not be empty"),
    ({"iterations": 0}, "arguments.iterations", ">= 1"),
    ({"iterations": 1001}, "arguments.iterations", "<= 1000"),
    ({"damping": {"numerator": 5, "denominator": 5}}, "arguments.damping.numerator", "must be below the denominator (5)"),
    ({"damping": {"numerator": 1, "denominator": 1}}, "arguments.damping.numerator", "a damping of 1 or more"),
    ({"damping": {"numerator": 1, "denominator": 2**30 + 1}}, "arguments.damping.denominator", "<="),
    ({"damping": {"numerator": 1}}, "arguments.damping.denominator", "is required"),
    ({"damping": "0.85"}, "arguments.damping", "mapping"),
    ({"top_k": 0}, "arguments.top_k", ">= 1"),
    ({"top_k": 1001}, "arguments.top_k", "<= 1000"),
    ({"colour": "red"}, "arguments.colour", "unknown field"),
    ({"edges_file": "graph.npy"}, "arguments.edges_file", "not supported"),
    ({"generate": {"kind": "rmat", "nodes": 4, "edges": 1, "seed": 1}}, "arguments.generate", "not both"),
])
def test_bad_arguments_are_refused_with_field_paths(change, path, fragment):
    """Each bad inline document is refused, and the problem names the offending field path."""
    found = refusals({**copy.deepcopy(INLINE), **change})
    assert path in found and fragment in found[path], found


@pytest.mark.parametrize("change, path, fragment", [
    ({"kind": "kronecker"}, "arguments.generate.kind", "rmat"),
    ({"nodes": 2**24 + 1}, "arguments.generate.nodes", "<="),
    ({"edges": -1}, "arguments.generate.edges", ">= 0"),
    ({"edges": 2**25 + 1}, "arguments.generate.edges", "<="),
    ({"seed": 2**64}, "arguments.generate.seed", "<="),
    ({"seed": True}, "arguments.generate.seed", "integer"),
])
def test_bad_generated_graphs_are_refused_with_field_paths(change, path, fragment):
    """Each bad generate block is refused, and the problem names the offending field path."""
    found = refusals({**copy.deepcopy(GENERATED), "generate": {**GENERATED["generate"], **change}})
    assert path in found and fragment in found[path], found


def test_a_document_without_a_graph_or_beyond_the_work_limit_is_refused():
    """No graph at all names the arguments; sources x iterations x (n + E) over 10^15 is refused before planning."""
    assert "needs a graph" in refusals({key: INLINE[key] for key in ("sources", "iterations", "damping", "top_k")})[
        "arguments"]
    huge = {**GENERATED, "generate": {"kind": "rmat", "nodes": 2**24, "edges": 2**25, "seed": 1},
            "sources": list(range(100_000)), "iterations": 1000}
    assert "<= 1000000000000000" in refusals(huge)["arguments"]


def test_shard_checks_pass_real_results_and_catch_tampering():
    """check_shard accepts a real shard and the lazy shape, and flags a wrong count, order, source and mass."""
    arguments = normalized({**GENERATED, "top_k": 50})
    shard = PRIMITIVE.execute_shard(arguments, 1, 2, 6, NUMPY_BACKEND)
    assert PRIMITIVE.check_shard(arguments, 2, 6, shard) == []
    assert PRIMITIVE.check_shard(arguments, 2, 6, PRIMITIVE.plausible_result(arguments, 2, 6)) == []
    tampered = [copy.deepcopy(shard) for _ in range(5)]
    tampered[0]["sources"] ^= 1
    tampered[1]["results"][0]["top"].reverse()
    tampered[2]["results"][1]["source"] = 3
    tampered[3]["results"][2]["top"][-1][1] += 1  # the whole graph no longer sums to 2^32
    tampered[4]["results"][3]["top"] = [[node, SCALE // 50] for node in range(50)]  # flat, below the floor
    for index, result in enumerate(tampered):
        assert PRIMITIVE.check_shard(arguments, 2, 6, result) != [], index


def test_results_are_json_native_integers():
    """Shard and merged outputs hold only dicts, lists and Python ints; arguments add strings (never floats)."""
    arguments = normalized(GENERATED)
    shard = PRIMITIVE.execute_shard(arguments, 1, 0, 3, NUMPY_BACKEND)
    assert json_native(shard) and json_native(PRIMITIVE.merge(arguments, [shard]))
    assert json_native(normalized(INLINE)) and json_native(arguments, (int, str))


def test_benchmark_arguments_are_valid_and_sized_to_the_request():
    """benchmark_arguments(units) validates and bills within one source's cost of the request."""
    for units in (1, 10**8):
        assert_benchmark_sized(PRIMITIVE, normalized, units)


def test_output_summary_has_facts_and_a_markdown_table():
    """The UI summary counts sources and renders each top entry as a table row with an exact decimal score."""
    summary = PRIMITIVE.output_summary(run(normalized(INLINE), 2))
    assert summary["sources"] == 4
    assert summary["table_markdown"].splitlines()[0] == "| source | rank | node | score |"
    assert len(summary["table_markdown"].splitlines()) == 2 + 4 * 4


@pytest.mark.gpu
@pytest.mark.parametrize("nodes, edges, start, stop", [(1, 3, 0, 1), (5_003, 40_000, 3, 40), (100_003, 400_000, 1, 21)])
def test_cupy_path_matches_numpy_bit_for_bit(nodes, edges, start, stop):
    """The CUDA pull kernel gives the NumPy shard exactly: many blocks, ragged tails, several source batches."""
    arguments = normalized({"generate": {"kind": "rmat", "nodes": nodes, "edges": edges, "seed": 77},
                            "sources": [(17 * i) % nodes for i in range(min(nodes, 64))], "iterations": 5,
                            "damping": {"numerator": 85, "denominator": 100}, "top_k": 20})
    stop = min(stop, PRIMITIVE.item_count(arguments))
    gpu = PRIMITIVE.execute_shard(arguments, 1, start, stop, select_backend("gpu"))
    assert gpu == PRIMITIVE.execute_shard(arguments, 1, start, stop, NUMPY_BACKEND)


def test_kernel_is_integer_only(tmp_path):
    """kernels/personalized_pagerank.cu names no floating-point type; its PTX is float-free with the pull entry."""
    assert_integer_only_kernel("personalized_pagerank.cu", ["forge_personalized_pagerank_pull"], tmp_path)
