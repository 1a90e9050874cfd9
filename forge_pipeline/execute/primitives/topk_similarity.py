"""search_ranking/topk_similarity@1: exact top-k int8 dot-product search.

Query q scores document i as the int32 dot product of their int8 embeddings; each query
keeps its `top_k` documents by score descending, ties by document id ascending. Items
are corpus documents with global ids, so a shard returns its own per-query top-k and
the merge keeps the global top-k exactly. Embeddings are given inline or generated from
Philox words (value = (word >> 24) - 128). docs/primitives/topk_similarity.md is the
full contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forge_pipeline.execute.backend import Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.common import philox_words_on, ranked_pairs, smallest_keys
from forge_pipeline.intake.problems import Problems, join, type_name

INT8_MIN, INT8_MAX = -128, 127
PRODUCT_MAX = 128 * 128  # the largest |a * b| for int8 a, b
INT32_MAX = (1 << 31) - 1
# Every partial sum of a dot product is bounded by dimension * PRODUCT_MAX, which must
# stay <= INT32_MAX: 131071 * 16384 = 2^31 - 16384. (2^31 / 16384 = 131072 would allow
# the sum 2^31, one past INT32_MAX, when every component is -128.)
MAX_DIMENSION = INT32_MAX // PRODUCT_MAX
MAX_DOCUMENTS = 1 << 30  # ids fit the 31 low bits of a ranking key
MAX_QUERIES = 1_024
MAX_QUERY_COMPONENTS = 1 << 22  # queries x dimension: the query matrix every shard holds; so work <= 2^52
MAX_CORPUS_COMPONENTS = 10**13  # documents x dimension Philox words; far inside 2^66 per stream
MAX_INLINE_COMPONENTS = 1 << 20  # values written inline in a request, corpus and queries together
MAX_TOP_K = 1_000
UINT64_MAX = (1 << 64) - 1
CORPUS_STREAM = 0
QUERY_STREAM = 1
# Ranking key = ((INT32_MAX - score) << DOCUMENT_BITS) | document: ascending keys are scores
# descending, ties by document ascending. INT32_MAX - score is in [0, 2^32 - 2], so the key
# is below 2^63 and fits a signed 64-bit integer.
DOCUMENT_BITS = 31
DOCUMENT_MASK = (1 << DOCUMENT_BITS) - 1
# Documents per chunk: bounds both the chunk's embeddings and its query x document scores.
CHUNK_COMPONENTS = 1 << 22
CHUNK_SCORES = 1 << 22
TILE = 16  # matches FORGE_TILE in kernels/topk_similarity.cu
# The NumPy path multiplies in floating point through BLAS, which is exact here: every
# product is an integer of magnitude <= 2^14 and every partial sum, in whatever order or
# blocking BLAS adds them (with or without FMA), an integer of magnitude <= dimension *
# 2^14. float32 holds every integer up to 2^24 exactly, so up to 1024 components nothing
# is ever rounded; float64 (2^53) covers every allowed dimension (< 2^31). The scores are
# the int32 dot products bit for bit, at BLAS speed instead of NumPy's integer loop.
FLOAT32_EXACT_DIMENSION = (1 << 24) // PRODUCT_MAX


class TopkSimilarity(Primitive):
    family = "search_ranking"
    name = "topk_similarity"
    version = 1
    work_unit = "multiply_add"
    item = "document"
    default_shard_size = 50_000
    contract = "docs/primitives/topk_similarity.md"

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        found_before = len(problems.found)
        document = problems.mapping(arguments, path, {"dimension", "top_k"}, {"corpus", "queries", "generate"})
        if document is None:
            return None
        dimension = problems.integer(document.get("dimension"), join(path, "dimension"), 1, MAX_DIMENSION) \
            if "dimension" in document else None
        top_k = problems.integer(document.get("top_k"), join(path, "top_k"), 1, MAX_TOP_K) \
            if "top_k" in document else None
        inline_fields = {"corpus", "queries"} & document.keys()
        embeddings = None
        if "generate" in document:
            if inline_fields:
                problems.add(join(path, "generate"), "give either generate or corpus and queries, not both")
            else:
                embeddings = self._generate(document["generate"], problems, join(path, "generate"), dimension)
        elif not inline_fields:
            problems.add(path, "needs either generate or corpus and queries")
        else:
            for missing in sorted({"corpus", "queries"} - inline_fields):
                problems.add(join(path, missing), "is required with inline embeddings")
            if len(inline_fields) == 2 and dimension is not None:
                embeddings = self._inline(document, problems, path, dimension)
        if len(problems.found) > found_before:
            return None
        return {"dimension": dimension, "top_k": top_k, **embeddings}

    @staticmethod
    def _generate(value: Any, problems: Problems, path: str, dimension: int | None) -> dict | None:
        found_before = len(problems.found)
        spec = problems.mapping(value, path, {"documents", "queries", "seed"}, set())
        if spec is None:
            return None
        documents = problems.integer(spec.get("documents"), join(path, "documents"), 1, MAX_DOCUMENTS) \
            if "documents" in spec else None
        queries = problems.integer(spec.get("queries"), join(path, "queries"), 1, MAX_QUERIES) \
            if "queries" in spec else None
        seed = problems.integer(spec.get("seed"), join(path, "seed"), 0, UINT64_MAX) if "seed" in spec else None
        if len(problems.found) > found_before or dimension is None:
            return None
        if documents * dimension > MAX_CORPUS_COMPONENTS:
            problems.add(join(path, "documents"), f"documents x dimension must be <= {MAX_CORPUS_COMPONENTS}")
        if queries * dimension > MAX_QUERY_COMPONENTS:
            problems.add(join(path, "queries"), f"queries x dimension must be <= {MAX_QUERY_COMPONENTS}")
        if len(problems.found) > found_before:
            return None
        return {"generate": {"documents": documents, "queries": queries, "seed": seed}}

    @staticmethod
    def _inline(document: dict, problems: Problems, path: str, dimension: int) -> dict | None:
        found_before = len(problems.found)
        budget_rows = MAX_INLINE_COMPONENTS // dimension
        corpus = problems.list(document["corpus"], join(path, "corpus"), 1, min(MAX_DOCUMENTS, budget_rows))
        queries = problems.list(document["queries"], join(path, "queries"), 1, min(MAX_QUERIES, budget_rows))
        if corpus is None or queries is None:
            return None
        if (len(corpus) + len(queries)) * dimension > MAX_INLINE_COMPONENTS:
            problems.add(path, f"inline corpus and queries hold more than {MAX_INLINE_COMPONENTS} values; "
                               "use generate")
            return None
        for name, vectors in (("corpus", corpus), ("queries", queries)):
            for index, vector in enumerate(vectors):
                check_vector(vector, problems, join(join(path, name), index), dimension)
        if len(problems.found) > found_before:
            return None
        return {"corpus": [list(vector) for vector in corpus], "queries": [list(vector) for vector in queries]}

    def item_count(self, arguments: dict) -> int:
        return sizes(arguments)[0]

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        return (stop - start) * sizes(arguments)[1] * arguments["dimension"]

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        # The workload seed is not used: embeddings come from the arguments (inline or generate.seed).
        xp = backend.xp
        dimension = arguments["dimension"]
        query_count = sizes(arguments)[1]
        keep = min(arguments["top_k"], stop - start)
        queries = embedding_rows(arguments, backend, "queries", 0, query_count)
        rows_per_chunk = max(1, min(CHUNK_COMPONENTS // dimension, CHUNK_SCORES // query_count))
        best = xp.empty((query_count, 0), dtype=xp.int64)
        for first in range(start, stop, rows_per_chunk):
            last = min(stop, first + rows_per_chunk)
            documents = embedding_rows(arguments, backend, "corpus", first, last)
            keys = ranking_keys(xp, similarity_scores(backend, queries, documents), first)
            best = smallest_keys(xp, xp.concatenate([best, keys], axis=1), keep)
        return {
            "start": start,
            "stop": stop,
            "documents": stop - start,
            "results": [decode_keys(row) for row in backend.to_host(best).tolist()],
        }

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        keep = min(arguments["top_k"], stop - start)
        top = [[document, 0] for document in range(start, start + keep)]
        return {"start": start, "stop": stop, "documents": stop - start,
                "results": [list(top) for _ in range(sizes(arguments)[1])]}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        documents, query_count = sizes(arguments)
        keep = min(arguments["top_k"], documents)
        results = []
        for query in range(query_count):
            candidates = [pair for result in shard_results for pair in result["results"][query]]
            candidates.sort(key=lambda pair: (-pair[1], pair[0]))
            results.append([list(pair) for pair in candidates[:keep]])
        return {
            "documents": sum(result["documents"] for result in shard_results),
            "queries": query_count,
            "dimension": arguments["dimension"],
            "results": results,
        }

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        keep = min(arguments["top_k"], count)
        score_bound = arguments["dimension"] * PRODUCT_MAX
        if result.get("documents") != count:
            problems.append(f"documents {result.get('documents')} != shard size {count}")
        lists = result.get("results")
        if not isinstance(lists, list) or len(lists) != sizes(arguments)[1]:
            return problems + ["results must hold one list per query"]
        for query, top in enumerate(lists):
            if not ranked_pairs(top, keep, start, stop, -score_bound, score_bound):
                problems.append(f"query {query}: not {keep} distinct [document, score] pairs from [{start}, {stop}) "
                                f"with |score| <= {score_bound}, by score descending then document ascending")
        return problems

    def benchmark_arguments(self, work_units: int) -> dict:
        dimension, queries = 256, 64
        documents = min(MAX_DOCUMENTS, max(1, work_units // (dimension * queries)))
        return {"dimension": dimension, "top_k": 10,
                "generate": {"documents": documents, "queries": queries, "seed": 20261125}}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| query | rank | document | score |", "|---:|---:|---:|---:|"]
        for query, top in enumerate(output["results"][:10]):
            rows += [f"| {query} | {rank} | {document} | {score} |" for rank, (document, score) in
                     enumerate(top[:5], start=1)]
        best = max((top[0][1] for top in output["results"] if top), default=None)
        return {
            "documents": output["documents"],
            "queries": output["queries"],
            "dimension": output["dimension"],
            "best_score": best,
            "table_markdown": "\n".join(rows),
        }


def sizes(embeddings: dict) -> tuple[int, int]:
    """(documents, queries) of an inline or generated argument document."""
    if "generate" in embeddings:
        return embeddings["generate"]["documents"], embeddings["generate"]["queries"]
    return len(embeddings["corpus"]), len(embeddings["queries"])


def check_vector(vector: Any, problems: Problems, path: str, dimension: int) -> None:
    """One inline embedding: `dimension` integers in [-128, 127]; the first bad component is named."""
    if not isinstance(vector, list):
        problems.add(path, f"must be a list, got {type_name(vector)}")
        return
    if len(vector) != dimension:
        problems.add(path, f"must have {dimension} components (dimension), got {len(vector)}")
        return
    for index, value in enumerate(vector):
        if isinstance(value, bool) or not isinstance(value, int) or not INT8_MIN <= value <= INT8_MAX:
            problems.add(join(path, index), f"must be an integer in [{INT8_MIN}, {INT8_MAX}], got {value!r}")
            return


def int8_from_words(words: np.ndarray) -> np.ndarray:
    """The documented map of a Philox word to an int8: (word >> 24) - 128."""
    return ((words >> np.uint32(24)).astype(np.int16) - 128).astype(np.int8)


def embedding_rows(arguments: dict, backend: Backend, side: str, first: int, last: int) -> Any:
    """Rows [first, last) of the corpus or the queries as an int8 (rows, dimension) array on the backend."""
    xp = backend.xp
    dimension = arguments["dimension"]
    if "generate" not in arguments:
        return xp.asarray(np.array(arguments[side][first:last], dtype=np.int8).reshape(last - first, dimension))
    seed = arguments["generate"]["seed"]
    stream = CORPUS_STREAM if side == "corpus" else QUERY_STREAM
    if backend.name == "cupy":
        out = xp.empty((last - first, dimension), dtype=xp.int8)
        kernel = raw_kernel("topk_similarity.cu", "forge_int8_embeddings")
        grid, block = launch_geometry(out.size)
        kernel(grid, block, (np.uint64(seed), np.uint32(stream), np.int64(first * dimension), np.int64(out.size), out))
        return out
    words = philox_words_on(backend, seed, stream, first * dimension, (last - first) * dimension)
    return int8_from_words(words).reshape(last - first, dimension)


def similarity_scores(backend: Backend, queries: Any, documents: Any) -> Any:
    """(queries, documents) int32 dot products; no partial sum can overflow (MAX_DIMENSION)."""
    xp = backend.xp
    if backend.name == "cupy":
        scores = xp.empty((queries.shape[0], documents.shape[0]), dtype=xp.int32)
        kernel = raw_kernel("topk_similarity.cu", "forge_topk_similarity_scores")
        grid = (-(-documents.shape[0] // TILE), -(-queries.shape[0] // TILE))
        kernel(grid, (TILE, TILE), (queries, documents, np.int64(queries.shape[0]), np.int64(documents.shape[0]),
                                    np.int64(queries.shape[1]), scores))
        return scores
    exact = np.float32 if queries.shape[1] <= FLOAT32_EXACT_DIMENSION else np.float64
    return np.matmul(queries.astype(exact), documents.astype(exact).T).astype(np.int32)


def ranking_keys(xp: Any, scores: Any, first_document: int) -> Any:
    documents = xp.arange(first_document, first_document + scores.shape[1], dtype=xp.int64)
    return ((INT32_MAX - scores.astype(xp.int64)) << DOCUMENT_BITS) | documents


def decode_keys(keys: list[int]) -> list[list[int]]:
    return [[key & DOCUMENT_MASK, INT32_MAX - (key >> DOCUMENT_BITS)] for key in keys]
