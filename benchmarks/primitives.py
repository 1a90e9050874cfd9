"""Work units per second of every registered primitive's shard kernel, against a plain-NumPy reference.

For each primitive the shipped NumPy path (`execute_shard` on one shard holding every item)
is timed side by side, interleaved, with a reference formulation: the most direct fast way to
compute the same shard result in plain NumPy, whole arrays at once, no chunking. Both must
return the same result, checked before timing. The ratio shipped seconds / reference seconds
is the figure to watch (target <= 2).

Where a CUDA device is visible the CuPy path is timed too, and its rate is set against the
device's peak: memory bandwidth (memoryClockRate kHz x 2 x memoryBusWidth / 8) or 32-bit
integer throughput (SMs x clockRate kHz x 64 INT32 lanes), whichever limit the primitive's
CuPy path is bound by under the per-unit model in DEVICE_MODELS.

The compiled CPU backend (numba) has its own section: Philox words/s on one thread and on
every core against `numpy.random.Philox.random_raw` (one thread), and every primitive's
numba shard against its NumPy path on the same shard, interleaved. Each numba function is
called once before timing (compilation, or loading it from numba's cache, is a process's
cost, not a shard's).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import sys
import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from forge_pipeline.execute.backend import NUMBA_BACKEND, NUMPY_BACKEND, Backend, cuda_device_visible, select_backend
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.execute.primitives.personalized_pagerank import rmat_edges
from forge_pipeline.intake.problems import Problems

SEED = 1  # the workload seed handed to execute_shard (only portfolio_loss reads it)
# Work units per primitive, (--quick, full): a full shipped run takes 0.2-1 s here, so the section about 30 s.
WORK_UNITS = {
    "portfolio_loss": (200_000, 20_000_000),
    "personalized_pagerank": (3_000_000, 30_000_000),
    "topk_similarity": (2_000_000, 300_000_000),
    "image_filter": (500_000, 16_000_000),
    "grouped_sum": (200_000, 8_000_000),
    "sort_dedupe": (200_000, 4_000_000),
}
INT32_LANES_PER_SM = 64  # INT32 results per clock per SM on compute capability 7.0 to 9.0
FLOAT32_EXACT_SUM = 1 << 24  # every integer of magnitude <= 2^24 is a float32
PHILOX_INT_OPS_PER_WORD = 25  # 10 rounds x (2 mul.lo + 2 mul.hi + 4 xor + 2 key adds) per 4-word block
# Work units per primitive for the compiled section, (--quick, full); portfolio_loss at the 10^8 draws.
COMPILED_WORK_UNITS = {
    "portfolio_loss": (2_000_000, 100_000_000),
    "personalized_pagerank": (3_000_000, 30_000_000),
    "topk_similarity": (2_000_000, 300_000_000),
    "image_filter": (500_000, 64_000_000),
    "grouped_sum": (200_000, 8_000_000),
    "sort_dedupe": (200_000, 8_000_000),
}


def portfolio_loss_reference(arguments: dict, seed: int) -> dict:
    """All N*K Philox words at once, `words < thresholds`, `defaults @ exposures`, np.bincount, np.partition."""
    scenarios, obligors = arguments["scenarios"], arguments["obligors"]
    thresholds = np.array([min(2**32 - 1, math.floor(Fraction(obligor["pd"]) * 2**32)) for obligor in obligors],
                          dtype=np.uint32)
    exposures = np.array([obligor["exposure"] for obligor in obligors], dtype=np.int64)
    defaults = philox_words(seed, 0, 0, scenarios * len(obligors)).reshape(scenarios, len(obligors)) < thresholds
    losses = defaults @ exposures
    total_exposure, bins = int(exposures.sum()), arguments["bins"]
    bin_index = np.minimum(bins - 1, losses * bins // total_exposure) if total_exposure else np.zeros_like(losses)
    tail = min(scenarios, max(scenarios - max(1, math.ceil(Fraction(quantile) * scenarios)) + 1
                              for quantile in arguments["quantiles"]))
    largest = -np.sort(-np.partition(losses, scenarios - tail)[scenarios - tail:])
    return {"start": 0, "stop": scenarios, "scenarios": scenarios, "loss_total": int(losses.sum()),
            "loss_max": int(losses.max()), "histogram": np.bincount(bin_index, minlength=bins).tolist(),
            "tail": largest.tolist()}


@functools.lru_cache(maxsize=1)
def _rmat_graph(nodes: int, edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # The shipped path caches its generated graph per process too: neither side times generation.
    return rmat_edges(nodes, edges, seed)


def personalized_pagerank_reference(arguments: dict, seed: int) -> dict:
    """All sources at once; per iteration one int64 np.add.at of the pushed shares over (source, edge target)."""
    spec = arguments["generate"]
    nodes, one = spec["nodes"], 1 << 32
    origins, targets = _rmat_graph(nodes, spec["edges"], spec["seed"])
    sources = np.array(arguments["sources"])
    rows = np.arange(sources.size)
    divisor = np.maximum(np.bincount(origins, minlength=nodes), 1)
    cells = (rows[:, None] * nodes + targets).ravel()
    numerator, denominator = arguments["damping"]["numerator"], arguments["damping"]["denominator"]
    rank = np.zeros((sources.size, nodes), dtype=np.int64)
    rank[rows, sources] = one
    for _ in range(arguments["iterations"]):
        share = rank * numerator // denominator // divisor
        pulled = np.zeros(rank.size, dtype=np.int64)
        np.add.at(pulled, cells, share[:, origins].ravel())
        rank = pulled.reshape(sources.size, nodes)
        rank[rows, sources] += one - rank.sum(axis=1)
    top = np.argsort(-rank, axis=1, kind="stable")[:, : min(arguments["top_k"], nodes)]
    results = [{"source": int(source), "top": [[int(node), int(rank[row, node])] for node in top[row]]}
               for row, source in enumerate(sources)]
    return {"start": 0, "stop": sources.size, "sources": sources.size, "results": results}


def topk_similarity_reference(arguments: dict, seed: int) -> dict:
    """All embeddings at once, one float32 BLAS matmul (exact: sums <= 2^24), np.partition, lexsort."""
    dimension, generate = arguments["dimension"], arguments["generate"]
    documents, queries = generate["documents"], generate["queries"]
    # int8 products are integers <= 2^14: float32 sums are exact in any order up to 2^24, so up to 1024 components.
    dtype = np.float32 if dimension * 128 * 128 <= FLOAT32_EXACT_SUM else np.int32

    def embeddings(stream: int, rows: int) -> np.ndarray:
        words = philox_words(generate["seed"], stream, 0, rows * dimension)
        return ((words >> 24).astype(np.int32) - 128).astype(dtype).reshape(rows, dimension)

    scores = (embeddings(1, queries) @ embeddings(0, documents).T).astype(np.int64)
    keep = min(arguments["top_k"], documents)
    kth_best = -np.partition(-scores, keep - 1, axis=1)[:, keep - 1]
    results = []
    for row, threshold in zip(scores, kth_best, strict=True):
        candidates = np.flatnonzero(row >= threshold)  # ties at the k-th score included
        order = candidates[np.lexsort((candidates, -row[candidates]))][:keep]
        results.append([[int(document), int(row[document])] for document in order])
    return {"start": 0, "stop": documents, "documents": documents, "results": results}


def image_filter_reference(arguments: dict, seed: int) -> dict:
    """All images at once: np.pad edge, two [1,2,1] passes of uint16 slices, reshape-sum 2x2, sha256."""
    generate = arguments["generate"]
    count, height, width = generate["count"], generate["height"], generate["width"]
    pixels = count * height * width
    words = philox_words(generate["seed"], 0, 0, (pixels + 3) // 4).astype("<u4", copy=False)
    padded = np.pad(words.view(np.uint8)[:pixels].reshape(count, height, width), ((0, 0), (1, 1), (1, 1)),
                    mode="edge").astype(np.uint16)
    vertical = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    blurred = (vertical[:, :, :-2] + 2 * vertical[:, :, 1:-1] + vertical[:, :, 2:] + 8) >> 4
    rows, columns = height // 2, width // 2
    blocks = blurred[:, : 2 * rows, : 2 * columns].reshape(count, rows, 2, columns, 2)
    out = ((blocks.sum(axis=(2, 4), dtype=np.uint16) + 2) >> 2).astype(np.uint8)
    return {"start": 0, "stop": count, "images": count,
            "digests": [hashlib.sha256(image.tobytes()).hexdigest() for image in out],
            "histogram": np.bincount(out.ravel(), minlength=256).tolist()}


def grouped_sum_reference(arguments: dict, seed: int) -> dict:
    """All rows at once, multiply-shift, np.bincount for the counts and int64 np.add.at for the sums."""
    generate = arguments["generate"]
    rows, groups, value_max = generate["rows"], generate["keys"], generate["value_max"]
    shift = np.uint64(32)
    keys = ((philox_words(generate["seed"], 0, 0, rows).astype(np.uint64) * np.uint64(groups)) >> shift).astype(np.intp)
    values = (philox_words(generate["seed"], 1, 0, rows).astype(np.uint64) * np.uint64(value_max + 1)) >> shift
    counts = np.bincount(keys, minlength=groups)
    sums = np.zeros(groups, dtype=np.int64)
    np.add.at(sums, keys, values.astype(np.int64))
    present = np.flatnonzero(counts)
    return {"start": 0, "stop": rows, "rows": rows, "keys": present.tolist(), "sums": sums[present].tolist(),
            "counts": counts[present].tolist(), "total": int(sums.sum())}


def sort_dedupe_reference(arguments: dict, seed: int) -> dict:
    """All keys at once: Philox word pairs as little-endian uint64, % modulus, np.sort, `s[1:] != s[:-1]`, base64."""
    generate = arguments["generate"]
    count = generate["count"]
    keys = philox_words(generate["seed"], 0, 0, 2 * count).astype("<u4", copy=False).view("<u8")
    if generate["modulus"] < 1 << 64:
        keys = keys % np.uint64(generate["modulus"])
    ordered = np.sort(keys)
    # np.unique would be the obvious call, but NumPy 2.4's is about 12x slower than sorting on 64-bit keys.
    distinct = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    return {"start": 0, "stop": count, "input_keys": count, "unique_keys": int(distinct.size),
            "keys_base64": base64.b64encode(distinct.astype("<u8", copy=False).tobytes()).decode("ascii")}


REFERENCES: dict[str, Callable[[dict, int], dict]] = {
    "portfolio_loss": portfolio_loss_reference,
    "personalized_pagerank": personalized_pagerank_reference,
    "topk_similarity": topk_similarity_reference,
    "image_filter": image_filter_reference,
    "grouped_sum": grouped_sum_reference,
    "sort_dedupe": sort_dedupe_reference,
}


def _pagerank_bytes_per_unit(arguments: dict) -> float:
    # Per source and iteration: an 8-byte in-source id and an 8-byte gathered share per edge, and about
    # five 8-byte passes per node (rank, share, offsets, pulled, update); almost no arithmetic.
    nodes, edges = arguments["generate"]["nodes"], arguments["generate"]["edges"]
    return (16 * edges + 40 * nodes) / (nodes + edges)


TITLE = "== shard kernels: work units/s per primitive, NumPy path vs the best plain-NumPy formulation =="
LIMITS = {"memory": ("memory bandwidth", "bytes"), "integer": ("integer throughput", "INT32 ops")}
# The limit each CuPy path is bound by, and how much of it one work unit needs (order-of-magnitude models).
DEVICE_MODELS: dict[str, tuple[str, Callable[[dict], float]]] = {
    # One Philox word per draw, then a compare, a select and a 64-bit add (the losses: 8 bytes per K draws).
    "portfolio_loss": ("integer", lambda arguments: PHILOX_INT_OPS_PER_WORD + 4),
    "personalized_pagerank": ("memory", _pagerank_bytes_per_unit),
    # One IMAD per multiply-add from shared-memory tiles; each document's Philox words serve every query.
    "topk_similarity": ("integer", lambda arguments: 1 + (PHILOX_INT_OPS_PER_WORD + 2)
                        / arguments["generate"]["queries"]),
    # A quarter Philox word per pixel, then about 12 adds and shifts for the blur and the 2x2 mean.
    "image_filter": ("integer", lambda arguments: PHILOX_INT_OPS_PER_WORD / 4 + 12),
    # Two words written and read, widened to uint64 and int64, counted, scattered by 64-bit atomics: ~100 B.
    "grouped_sum": ("memory", lambda arguments: 100),
    # Two words per key and the modulus, an LSB radix sort of 8-byte keys (8 passes, each a read and a
    # write), the neighbour comparison and the compaction: ~170 B.
    "sort_dedupe": ("memory", lambda arguments: 170),
}


def device_peaks(backend: Backend) -> dict[str, float]:
    """Peak bytes/s and INT32 operations/s of the current device, from its properties."""
    runtime = backend.xp.cuda.runtime
    device = backend.xp.cuda.Device().id
    properties = runtime.getDeviceProperties(device)
    # CUDA 13 drops the clock fields from the properties struct; the attributes (ids from cudaDeviceAttr) remain.
    attribute_ids = {"clockRate": 13, "multiProcessorCount": 16, "memoryClockRate": 36, "memoryBusWidth": 37}
    value = {name: properties.get(name) or runtime.deviceGetAttribute(attribute, device)
             for name, attribute in attribute_ids.items()}
    return {"memory": value["memoryClockRate"] * 1e3 * 2 * value["memoryBusWidth"] / 8,
            "integer": value["multiProcessorCount"] * value["clockRate"] * 1e3 * INT32_LANES_PER_SM}


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def bench_primitive(qualified_name: str, quick: bool = False, repeats: int = 3) -> dict:
    """Shipped NumPy path vs its reference (interleaved, best of `repeats`), and the CuPy path where a device is."""
    primitive = PRIMITIVES[qualified_name]
    problems = Problems()
    arguments = primitive.normalize_arguments(
        primitive.benchmark_arguments(WORK_UNITS[primitive.name][0 if quick else 1]), problems)
    problems.raise_if_any()
    items = primitive.item_count(arguments)
    units = primitive.work_units(arguments, 0, items)
    reference = REFERENCES[primitive.name]

    def shipped(backend: Backend = NUMPY_BACKEND) -> dict:
        return primitive.execute_shard(arguments, SEED, 0, items, backend)

    expected = shipped()  # also the warm-up
    if reference(arguments, SEED) != expected:
        raise AssertionError(f"{qualified_name}: the reference formulation disagrees with execute_shard")
    shipped_s, reference_s = math.inf, math.inf
    for _ in range(repeats):
        shipped_s = min(shipped_s, timed(shipped))
        reference_s = min(reference_s, timed(lambda: reference(arguments, SEED)))
    measured = {"primitive": qualified_name, "work_unit": primitive.work_unit, "units": units,
                "numpy_per_s": units / shipped_s, "reference_per_s": units / reference_s,
                "ratio": shipped_s / reference_s, "reference": reference.__doc__.split("\n")[0]}
    if cuda_device_visible():
        backend = select_backend("gpu")
        if shipped(backend) != expected:  # also compiles the kernels
            raise AssertionError(f"{qualified_name}: the CuPy path disagrees with the NumPy path")
        gpu_s = min(timed(lambda: shipped(backend)) for _ in range(repeats))
        limit, per_unit = DEVICE_MODELS[primitive.name]
        needed = per_unit(arguments)
        measured.update(gpu_per_s=units / gpu_s, gpu_cpu_ratio=shipped_s / gpu_s, limit=LIMITS[limit][0],
                        per_unit=f"{needed:.1f} {LIMITS[limit][1]}",
                        peak_fraction=units * needed / gpu_s / device_peaks(backend)[limit])
    return measured


def bench_compiled_philox(words: int, repeats: int = 3) -> dict:
    """32-bit Philox words/s: numba on one thread and on every core, against numpy.random.Philox.random_raw
    (NumPy's C Philox4x64, single-threaded; each 64-bit output counted as two words), best of `repeats`."""
    import numba

    from forge_pipeline.execute import compiled

    generator = np.random.Philox(12345)
    compiled.philox_words(12345, 0, 0, 1024)  # compile (or load from numba's cache) before timing
    cores = numba.config.NUMBA_NUM_THREADS
    seconds = {"numpy": math.inf, "one": math.inf, "all": math.inf}
    for _ in range(repeats):
        seconds["numpy"] = min(seconds["numpy"], timed(lambda: generator.random_raw(words // 2)))
        numba.set_num_threads(1)
        seconds["one"] = min(seconds["one"], timed(lambda: compiled.philox_words(12345, 0, 0, words)))
        numba.set_num_threads(cores)
        seconds["all"] = min(seconds["all"], timed(lambda: compiled.philox_words(12345, 0, 0, words)))
    rates = {name: words / value for name, value in seconds.items()}
    return {"words": words, "threads": cores, "per_s": rates, "one_ratio": rates["one"] / rates["numpy"],
            "all_ratio": rates["all"] / rates["numpy"]}


def bench_compiled_primitive(qualified_name: str, quick: bool = False, repeats: int = 3) -> dict:
    """One shard holding every item on the numba backend (every core) and on the NumPy path, interleaved, best
    of `repeats`; the two results must be equal before anything is timed."""
    primitive = PRIMITIVES[qualified_name]
    problems = Problems()
    arguments = primitive.normalize_arguments(
        primitive.benchmark_arguments(COMPILED_WORK_UNITS[primitive.name][0 if quick else 1]), problems)
    problems.raise_if_any()
    items = primitive.item_count(arguments)
    units = primitive.work_units(arguments, 0, items)

    def shipped(backend: Backend) -> dict:
        return primitive.execute_shard(arguments, SEED, 0, items, backend)

    if shipped(NUMBA_BACKEND) != shipped(NUMPY_BACKEND):  # also the warm-up of both
        raise AssertionError(f"{qualified_name}: the numba path disagrees with the NumPy path")
    numba_s, numpy_s = math.inf, math.inf
    for _ in range(repeats):
        numba_s = min(numba_s, timed(lambda: shipped(NUMBA_BACKEND)))
        numpy_s = min(numpy_s, timed(lambda: shipped(NUMPY_BACKEND)))
    measured = {"primitive": qualified_name, "work_unit": primitive.work_unit, "units": units,
                "numba_per_s": units / numba_s, "numpy_per_s": units / numpy_s, "ratio": numpy_s / numba_s}
    if cuda_device_visible():
        backend = select_backend("gpu")
        if shipped(backend) != shipped(NUMBA_BACKEND):  # also compiles the kernels
            raise AssertionError(f"{qualified_name}: the CuPy path disagrees with the numba path")
        measured["gpu_over_numba"] = numba_s / min(timed(lambda: shipped(backend)) for _ in range(repeats))
    return measured


def bench_device_philox(words: int, repeats: int = 3) -> dict:
    """CuPy Philox bytes/s over the device's own copy bandwidth (a device-to-device copy of the same bytes)."""
    from forge_pipeline.execute.primitives.common import philox_words_on

    backend = select_backend("gpu")
    xp = backend.xp
    source = xp.zeros(words, dtype=xp.uint32)
    target = xp.empty_like(source)

    def synchronized(function: Callable[[], object]) -> Callable[[], None]:
        return lambda: (function(), xp.cuda.Device().synchronize())

    generate = synchronized(lambda: philox_words_on(backend, 12345, 0, 0, words))
    copy = synchronized(lambda: xp.copyto(target, source))
    generate(), copy()  # compile and warm up
    philox_s = min(timed(generate) for _ in range(repeats))
    copy_s = min(timed(copy) for _ in range(repeats))
    # Both write 4 bytes per word to device memory (the copy also reads them): the ratio is of bytes per second.
    return {"words": words, "philox_words_per_s": words / philox_s, "ratio": copy_s / philox_s}


COMPILED_TITLE = ("== compiled CPU backend (numba, every core) vs the NumPy path, same shard, interleaved; targets: "
                  "portfolio_loss >= 8 at 10^8 draws, others >= 3 ==")


def compiled_lines(quick: bool) -> list[str]:
    """The compiled section of `make bench`: Philox rates and ratios, then one line per primitive version."""
    philox = bench_compiled_philox(1 << (20 if quick else 26))
    rates = philox["per_s"]
    lines = [f"Philox4x32-10, {philox['words']:,} 32-bit words: numba 1 thread {rates['one'] / 1e6:.1f} Mwords/s, "
             f"{philox['threads']} threads {rates['all'] / 1e6:.1f} Mwords/s; numpy.random.Philox.random_raw "
             f"{rates['numpy'] / 1e6:.1f} Mwords/s; ratios {philox['one_ratio']:.2f} (target >= 1.5) and "
             f"{philox['all_ratio']:.2f} (target >= 2.5 on 2 cores)"]
    if cuda_device_visible():
        device = bench_device_philox(1 << (20 if quick else 28))
        lines.append(f"CuPy Philox {device['philox_words_per_s'] / 1e9:.1f} Gwords/s, over a device copy of the same "
                     f"bytes {device['ratio']:.2f} (target >= 0.5)")
    for name in PRIMITIVES:
        measured = bench_compiled_primitive(name, quick)
        unit = measured["work_unit"]
        gpu = f"; CuPy / numba {measured['gpu_over_numba']:.1f}x (target >= 20)" if "gpu_over_numba" in measured else ""
        lines.append(f"{name}: {measured['units']:,} {unit}s; numba {measured['numba_per_s'] / 1e6:.1f} M{unit}/s, "
                     f"numpy {measured['numpy_per_s'] / 1e6:.1f} M{unit}/s, ratio {measured['ratio']:.2f}{gpu}")
    return lines


REFERENCE_PRIMITIVES = [name for name, primitive in PRIMITIVES.items() if primitive.version == 1]
"""The reference formulations above are of the @1 contracts; the @2 versions are timed in the compiled section."""


def report_lines(qualified_name: str, quick: bool) -> list[str]:
    """One primitive's lines of the `make bench` section: rates, ratio, its reference named, the CuPy figures."""
    measured = bench_primitive(qualified_name, quick)
    unit = measured["work_unit"]
    rates = (f"{qualified_name}: {measured['units']:,} {unit}s; numpy {measured['numpy_per_s'] / 1e6:.1f} M{unit}/s, "
             f"reference {measured['reference_per_s'] / 1e6:.1f} M{unit}/s; ratio to the best plain-NumPy "
             f"formulation {measured['ratio']:.2f} (target <= 2)")
    device = "  (no CUDA device visible: NumPy only)"
    if "gpu_per_s" in measured:
        device = (f"  cupy {measured['gpu_per_s'] / 1e6:.1f} M{unit}/s, GPU/CPU {measured['gpu_cpu_ratio']:.1f}x; "
                  f"bound by {measured['limit']}: {measured['peak_fraction']:.1%} of the device's peak "
                  f"(modelled {measured['per_unit']} per {unit})")
    return [rates, f"  reference: {measured['reference']}", device]


if __name__ == "__main__":  # these sections alone: python -m benchmarks.primitives [--quick] [--compiled]
    if "--compiled" not in sys.argv:
        print(TITLE, flush=True)
        for name in REFERENCE_PRIMITIVES:
            print("\n".join(report_lines(name, "--quick" in sys.argv)), flush=True)
    print(COMPILED_TITLE, flush=True)
    for text in compiled_lines("--quick" in sys.argv):
        print(text, flush=True)
