"""graph_propagation/personalized_pagerank@1 and @2: fixed-point personalized PageRank.

@1 computes and reports int64 scores with ONE = 2^32 as 1.0; its accumulated rounding
bound (E + n)·T·2^-32 exceeds 1.0 at the contract's maximum sizes. @2 computes with
ONE = 2^62 (r·numerator/denominator split so nothing overflows) and reports scores at
2^24, rounded half up: the error of a reported score against exact real arithmetic is
below 1/2 + 2·(E + n)·T·2^-62·2^24 < 0.87 of its last unit at the maximum sizes.

Each iteration node u keeps share_u = floor(floor(r_u * numerator / denominator) /
out_degree_u) for every out-edge; all mass not pushed (teleport, dangling nodes, rounding
remainders) returns to the source, so the scores always sum to exactly ONE. Items are sources: a shard runs its
sources' propagations and returns each one's top-k (node, score), ties by node id
ascending; the merge concatenates them in source order. The graph is inline or an R-MAT
graph generated from Philox words. docs/primitives/personalized_pagerank.md and
personalized_pagerank_v2.md are the full contracts.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from forge_pipeline.execute.backend import Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.common import ranked_pairs, smallest_keys
from forge_pipeline.intake.problems import Problems, join, type_name

SCALE_BITS = 32
ONE = 1 << SCALE_BITS  # fixed-point 1.0: the whole mass of one source
MAX_NODES = 1 << 24
MAX_INLINE_EDGES = 200_000
MAX_GENERATED_EDGES = 1 << 25
MAX_SOURCES = 100_000
MAX_ITERATIONS = 1_000
MAX_TOP_K = 1_000
# @1: r_u <= ONE = 2^32, so r_u * numerator < 2^32 * 2^30 = 2^62 fits a signed 64-bit integer.
MAX_DENOMINATOR = 1 << 30
MAX_WORK_UNITS = 10**15
UINT64_MAX = (1 << 64) - 1
GRAPH_STREAM = 1  # Philox stream of R-MAT generation under key generate.seed
# R-MAT quadrant probabilities a, b, c, d = 0.57, 0.19, 0.19, 0.05 as thresholds on a 32-bit word.
RMAT_THRESHOLDS = ((57 << 32) // 100, (76 << 32) // 100, (95 << 32) // 100)
# Ranking key = ((ONE - score) << NODE_BITS) | node: ascending keys are scores descending, ties
# by node ascending. ONE - score <= 2^32, so the key is below 2^57 (2^56 + 2^24 at most).
NODE_BITS = 24
NODE_MASK = (1 << NODE_BITS) - 1
# Sources per batch are sized so one batch holds about this many (source, node or edge) cells.
CHUNK_CELLS = 1 << 22
CHUNK_WORDS = 1 << 21  # Philox words per R-MAT generation chunk


class PersonalizedPagerank(Primitive):
    family = "graph_propagation"
    name = "personalized_pagerank"
    version = 1
    work_unit = "graph_update"  # one node or edge visited in one iteration for one source
    item = "source"
    default_shard_size = 16
    contract = "docs/primitives/personalized_pagerank.md"
    one = ONE  # fixed-point 1.0 of the computation
    output_shift = 0  # reported score = (r + half) >> output_shift, half = 2^(shift - 1) (0 when shift is 0)
    split_product = False  # @2 computes floor(r * n / d) as (r div d) * n + floor((r mod d) * n / d)

    @classmethod
    def reported(cls, rank: Any) -> Any:
        """Scores as reported (int or int64 array): the computed fixed point rounded half up to the output scale."""
        return (rank + ((1 << cls.output_shift) >> 1)) >> cls.output_shift

    @classmethod
    def score_scale(cls) -> int:
        """The reported score that stands for 1.0."""
        return cls.one >> cls.output_shift

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        found_before = len(problems.found)
        document = problems.mapping(arguments, path, {"sources", "iterations", "damping", "top_k"},
                                    {"nodes", "edges", "generate", "edges_file"})
        if document is None:
            return None
        graph = self._graph(document, problems, path)
        iterations = problems.integer(document.get("iterations"), join(path, "iterations"), 1, MAX_ITERATIONS) \
            if "iterations" in document else None
        top_k = problems.integer(document.get("top_k"), join(path, "top_k"), 1, MAX_TOP_K) \
            if "top_k" in document else None
        damping = self._damping(document["damping"], problems, join(path, "damping")) if "damping" in document \
            else None
        sources = None
        if "sources" in document and graph is not None:
            sources = self._sources(document["sources"], problems, join(path, "sources"), graph_size(graph)[0])
        if len(problems.found) > found_before:
            return None
        nodes, edges = graph_size(graph)
        if len(sources) * iterations * (nodes + edges) > MAX_WORK_UNITS:
            problems.add(path, f"sources x iterations x (nodes + edges) must be <= {MAX_WORK_UNITS}")
            return None
        return {**graph, "sources": sources, "iterations": iterations, "damping": damping, "top_k": top_k}

    def _graph(self, document: dict, problems: Problems, path: str) -> dict | None:
        if "edges_file" in document:
            problems.add(join(path, "edges_file"), "graph files are not supported; give nodes and edges inline "
                                                   "or generate")
            return None
        inline_fields = {"nodes", "edges"} & document.keys()
        if "generate" in document:
            if inline_fields:
                problems.add(join(path, "generate"), "give either generate or nodes and edges, not both")
                return None
            return self._generate(document["generate"], problems, join(path, "generate"))
        if not inline_fields:
            problems.add(path, "needs a graph: nodes and edges, or generate")
            return None
        for missing in sorted({"nodes", "edges"} - inline_fields):
            problems.add(join(path, missing), "is required with an inline graph")
        if len(inline_fields) < 2:
            return None
        nodes = problems.integer(document["nodes"], join(path, "nodes"), 1, MAX_NODES)
        edges = problems.list(document["edges"], join(path, "edges"), 0, MAX_INLINE_EDGES)
        if nodes is None or edges is None:
            return None
        found_before = len(problems.found)
        for index, edge in enumerate(edges):
            edge_path = join(join(path, "edges"), index)
            if not isinstance(edge, list) or len(edge) != 2:
                problems.add(edge_path, f"must be a [from, to] pair, got {type_name(edge)}")
                continue
            for end, node in enumerate(edge):
                problems.integer(node, join(edge_path, end), 0, nodes - 1)
        if len(problems.found) > found_before:
            return None
        return {"nodes": nodes, "edges": [[edge[0], edge[1]] for edge in edges]}

    @staticmethod
    def _generate(value: Any, problems: Problems, path: str) -> dict | None:
        found_before = len(problems.found)
        spec = problems.mapping(value, path, {"kind", "nodes", "edges", "seed"}, set())
        if spec is None:
            return None
        if "kind" in spec:
            problems.string(spec["kind"], join(path, "kind"), choices=("rmat",))
        nodes = problems.integer(spec.get("nodes"), join(path, "nodes"), 1, MAX_NODES) if "nodes" in spec else None
        edges = problems.integer(spec.get("edges"), join(path, "edges"), 0, MAX_GENERATED_EDGES) \
            if "edges" in spec else None
        seed = problems.integer(spec.get("seed"), join(path, "seed"), 0, UINT64_MAX) if "seed" in spec else None
        if len(problems.found) > found_before:
            return None
        return {"generate": {"kind": "rmat", "nodes": nodes, "edges": edges, "seed": seed}}

    @staticmethod
    def _damping(value: Any, problems: Problems, path: str) -> dict | None:
        found_before = len(problems.found)
        ratio = problems.mapping(value, path, {"numerator", "denominator"}, set())
        if ratio is None:
            return None
        denominator = problems.integer(ratio.get("denominator"), join(path, "denominator"), 1, MAX_DENOMINATOR) \
            if "denominator" in ratio else None
        numerator = None
        if "numerator" in ratio and denominator is not None:
            # numerator < denominator: some mass teleports every iteration, as PageRank needs.
            numerator = problems.integer(ratio["numerator"], join(path, "numerator"), 0, None)
            if numerator is not None and numerator >= denominator:
                problems.add(join(path, "numerator"), f"must be below the denominator ({denominator}): a damping "
                                                      "of 1 or more leaves no mass to teleport")
                numerator = None
        if len(problems.found) > found_before:
            return None
        return {"numerator": numerator, "denominator": denominator}

    @staticmethod
    def _sources(value: Any, problems: Problems, path: str, nodes: int) -> list[int] | None:
        items = problems.list(value, path, 1, MAX_SOURCES)
        if items is None:
            return None
        found_before = len(problems.found)
        seen: set[int] = set()
        for index, source in enumerate(items):
            if problems.integer(source, join(path, index), 0, nodes - 1) is None:
                continue
            if source in seen:
                problems.add(join(path, index), f"duplicate source {source}")
            seen.add(source)
        return list(items) if len(problems.found) == found_before else None

    def item_count(self, arguments: dict) -> int:
        return len(arguments["sources"])

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        nodes, edges = graph_size(arguments)
        return (stop - start) * arguments["iterations"] * (nodes + edges)

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        # The workload seed is not used: the graph comes from the arguments (inline or generate.seed).
        xp = backend.xp
        nodes, edges = graph_size(arguments)
        out_degree, in_offsets, in_sources = (xp.asarray(array) for array in graph_arrays(arguments))
        numerator = arguments["damping"]["numerator"]
        denominator = arguments["damping"]["denominator"]
        keep = min(arguments["top_k"], nodes)
        node_ids = xp.arange(nodes, dtype=xp.int64)
        # Dangling nodes divide by 1; no edge reads their share, so their mass returns in the teleport.
        divisor = xp.maximum(out_degree, 1)
        batch_size = max(1, CHUNK_CELLS // (nodes + edges))
        scale = self.score_scale()
        results = []
        for first in range(start, stop, batch_size):
            batch_sources = arguments["sources"][first : min(stop, first + batch_size)]
            if backend.name == "numba":
                from forge_pipeline.execute import compiled  # numba is imported only where this backend was chosen

                rank = np.empty((len(batch_sources), nodes), dtype=np.int64)
                compiled.pagerank_ranks(np.array(batch_sources, dtype=np.int64), arguments["iterations"], numerator,
                                        denominator, divisor, in_offsets, in_sources, self.one, self.split_product,
                                        rank)
            else:
                rank = self._ranks(backend, batch_sources, arguments["iterations"], numerator, denominator, divisor,
                                   in_offsets, in_sources)
            top = smallest_keys(xp, ((scale - self.reported(rank)) << NODE_BITS) | node_ids, keep)
            for source, keys in zip(batch_sources, backend.to_host(top).tolist()):
                results.append({"source": source, "top": [[key & NODE_MASK, scale - (key >> NODE_BITS)]
                                                          for key in keys]})
        return {"start": start, "stop": stop, "sources": stop - start, "results": results}

    def _ranks(self, backend: Backend, sources: list[int], iterations: int, numerator: int, denominator: int,
               divisor: Any, in_offsets: Any, in_sources: Any) -> Any:
        """The computed scores of each source, int64 (sources, nodes) on the backend, each row summing to `one`."""
        xp = backend.xp
        rows = xp.arange(len(sources))
        columns = xp.asarray(np.array(sources, dtype=np.int64))
        rank = xp.zeros((len(sources), xp.asarray(divisor).shape[0]), dtype=xp.int64)
        rank[rows, columns] = self.one
        for _ in range(iterations):
            if self.split_product:
                damped = (rank // denominator) * numerator + (rank % denominator) * numerator // denominator
            else:
                damped = (rank * numerator) // denominator
            rank = pull(backend, damped // divisor, in_offsets, in_sources)
            rank[rows, columns] += self.one - rank.sum(axis=1)
        return rank

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        keep = min(arguments["top_k"], graph_size(arguments)[0])
        results = []
        for source in arguments["sources"][start:stop]:
            others = [node for node in range(keep) if node != source][: keep - 1]
            results.append({"source": source, "top": [[source, self.score_scale()]] + [[node, 0] for node in others]})
        return {"start": start, "stop": stop, "sources": stop - start, "results": results}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        return {
            "score_scale": self.score_scale(),
            "sources": sum(result["sources"] for result in shard_results),
            "results": [entry for result in shard_results for entry in result["results"]],
        }

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        nodes = graph_size(arguments)[0]
        keep = min(arguments["top_k"], nodes)
        damping = arguments["damping"]
        scale = self.score_scale()
        # The source gets at least one - floor(one * numerator / denominator) from the teleport; reported scores
        # are each rounded (half up) at most half a unit, so k of them sum within k // 2 of the scale.
        teleport_floor = self.reported(self.one - self.one * damping["numerator"] // damping["denominator"])
        slack = keep // 2 if self.output_shift else 0
        if result.get("sources") != count:
            problems.append(f"sources {result.get('sources')} != shard size {count}")
        entries = result.get("results")
        if not isinstance(entries, list) or len(entries) != count:
            return problems + [f"results must hold {count} entries, one per source"]
        for offset, entry in enumerate(entries):
            source = arguments["sources"][start + offset]
            if not isinstance(entry, dict) or entry.get("source") != source:
                problems.append(f"result {offset} is not for source {source}")
                continue
            top = entry.get("top")
            if not ranked_pairs(top, keep, 0, nodes, 0, scale):
                problems.append(f"source {source}: top is not {keep} distinct [node, score] pairs with scores in "
                                f"[0, {scale}], by score descending then node ascending")
                continue
            total = sum(score for _, score in top)
            if total > scale + slack or (keep == nodes and abs(total - scale) > slack):
                problems.append(f"source {source}: scores sum to {total}; the whole graph holds {scale} "
                                f"(reported scores within {slack} of it)")
            if top[0][1] < teleport_floor:
                problems.append(f"source {source}: best score {top[0][1]} is below the teleport floor "
                                f"{teleport_floor}")
        return problems

    def benchmark_arguments(self, work_units: int) -> dict:
        nodes, edges, iterations = 1 << 14, 1 << 17, 20
        sources = min(nodes, max(1, work_units // (iterations * (nodes + edges))))
        return {"generate": {"kind": "rmat", "nodes": nodes, "edges": edges, "seed": 20261125},
                "sources": list(range(sources)), "iterations": iterations,
                "damping": {"numerator": 85, "denominator": 100}, "top_k": 10}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| source | rank | node | score |", "|---:|---:|---:|---:|"]
        for entry in output["results"][:10]:
            rows += [f"| {entry['source']} | {rank} | {node} | {fixed_point_text(score, output['score_scale'])} |"
                     for rank, (node, score) in enumerate(entry["top"][:5], start=1)]
        return {
            "sources": output["sources"],
            "score_scale": output["score_scale"],
            "table_markdown": "\n".join(rows),
        }


class PersonalizedPagerankV2(PersonalizedPagerank):
    """@2: computed at 2^62, reported at 2^24 rounded half up, so every reported score is within one unit of
    the exact real-arithmetic iteration at the contract's maximum sizes (docs/primitives/personalized_pagerank_v2.md).
    """

    version = 2
    contract = "docs/primitives/personalized_pagerank_v2.md"
    one = 1 << 62
    output_shift = 38
    split_product = True


def graph_size(graph: dict) -> tuple[int, int]:
    """(nodes, edges) of an inline or generated graph document."""
    if "generate" in graph:
        return graph["generate"]["nodes"], graph["generate"]["edges"]
    return graph["nodes"], len(graph["edges"])


def fixed_point_text(score: int, scale: int = ONE, digits: int = 6) -> str:
    """score / scale as a decimal truncated to `digits` places, by integer arithmetic."""
    whole, fraction = divmod(score * 10**digits // scale, 10**digits)
    return f"{whole}.{fraction:0{digits}d}"


def graph_arrays(graph: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host int64 (out_degree[n], in_offsets[n + 1], in_sources[E]): the in-edge CSR every backend pulls over."""
    if "generate" in graph:
        spec = graph["generate"]
        return _generated_graph_arrays(spec["nodes"], spec["edges"], spec["seed"])
    edges = np.array(graph["edges"], dtype=np.int64).reshape(-1, 2)
    return csr_arrays(graph["nodes"], edges[:, 0], edges[:, 1])


@functools.lru_cache(maxsize=2)
def _generated_graph_arrays(nodes: int, edges: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Every shard of a workload regenerates the same graph; the cache keeps one process from paying twice.
    arrays = csr_arrays(nodes, *rmat_edges(nodes, edges, seed))
    for array in arrays:
        array.setflags(write=False)
    return arrays


def csr_arrays(nodes: int, origins: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out_degree = np.bincount(origins, minlength=nodes).astype(np.int64)
    in_offsets = np.zeros(nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(targets, minlength=nodes), out=in_offsets[1:])
    in_sources = origins[np.argsort(targets, kind="stable")].astype(np.int64)
    return out_degree, in_offsets, in_sources


def rmat_edges(nodes: int, edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge i reads words i*L .. i*L + L - 1 of GRAPH_STREAM, L = bit_length(nodes - 1), most significant
    level first; each word picks a quadrant, and the 2^L-wide ids are scaled to nodes by (id * nodes) >> L."""
    levels = (nodes - 1).bit_length()
    origins = np.zeros(edges, dtype=np.int64)
    targets = np.zeros(edges, dtype=np.int64)
    if levels == 0:
        return origins, targets
    weights = np.left_shift(np.int64(1), np.arange(levels - 1, -1, -1, dtype=np.int64))
    low, middle, high = (np.uint32(threshold) for threshold in RMAT_THRESHOLDS)
    rows_per_chunk = max(1, CHUNK_WORDS // levels)
    for first in range(0, edges, rows_per_chunk):
        last = min(edges, first + rows_per_chunk)
        words = philox_words(seed, GRAPH_STREAM, first * levels, (last - first) * levels).reshape(-1, levels)
        row_bits = words >= middle  # quadrants c and d
        column_bits = ((words >= low) & (words < middle)) | (words >= high)  # quadrants b and d
        origins[first:last] = (row_bits.astype(np.int64) @ weights) * nodes >> levels
        targets[first:last] = (column_bits.astype(np.int64) @ weights) * nodes >> levels
    return origins, targets


def pull(backend: Backend, share: Any, in_offsets: Any, in_sources: Any) -> Any:
    """next[b, v] = sum of share[b, u] over the in-edges u -> v: integer sums, any order gives the same bits."""
    xp = backend.xp
    batch, nodes = share.shape
    if backend.name == "cupy":
        pulled = xp.empty_like(share)
        kernel = raw_kernel("personalized_pagerank.cu", "forge_personalized_pagerank_pull")
        grid, block = launch_geometry(batch * nodes)
        kernel(grid, block, (share, in_offsets, in_sources, np.int64(nodes), np.int64(batch * nodes), pulled))
        return pulled
    running = np.zeros((batch, len(in_sources) + 1), dtype=np.int64)
    np.cumsum(share[:, in_sources], axis=1, out=running[:, 1:])
    return running[:, in_offsets[1:]] - running[:, in_offsets[:-1]]
