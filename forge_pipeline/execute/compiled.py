"""The compiled CPU backend: Philox4x32-10 and the primitives' shard loops in numba, bit-identical to NumPy.

Imported only where numba is installed (`backend.NUMBA_BACKEND`); NumPy and CuPy alone never
need it. Every loop cuts its work into fixed pieces that depend on the data alone (never on
the thread count) and spreads them over threads with `prange`; each piece writes only its
own output slots, and everything is integer arithmetic, so the bits are the same for any
`numba.set_num_threads`. Functions compile on first call and are cached on disk
(`cache=True`), so a process pays the compile once per machine, not once per shard.
"""

from __future__ import annotations

import os

# Threads wait for work by sleeping, not spinning, unless the operator says otherwise: an Agent shares its
# cores with other processes, and spinning OpenMP workers made 2 threads slower than 1 on a loaded 2-core
# machine (image_filter, measured with a load average of 9: 140 vs 310 Minput_pixel/s spinning vs passive).
# Set before numba starts its OpenMP pool; each parallel region is milliseconds of work, so waking costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from forge_pipeline.execute import philox  # noqa: E402

# The Philox constants as uint64 scalars: numba then keeps every operation in unsigned 64-bit integers.
MASK_32 = np.uint64(philox.MASK_32)
SHIFT_32 = np.uint64(32)
MULTIPLIER_0 = np.uint64(philox.MULTIPLIER_0)
MULTIPLIER_1 = np.uint64(philox.MULTIPLIER_1)
WEYL_0 = np.uint64(philox.WEYL_0)
WEYL_1 = np.uint64(philox.WEYL_1)
ZERO = np.uint64(0)
# Philox blocks per piece of philox_fill: 256 KiB of output, large enough to amortize a thread's start.
FILL_BLOCKS = 1 << 14
# Blocks generated at once inside a fused loop: 16 KiB of words, kept in L1 and consumed there (the portfolio
# loop fills it with whole scenarios: one scenario's words when they need more).
BUFFER_BLOCKS = 1 << 10
PIECE_WORDS = 1 << 18  # words (draws) per piece of the portfolio loop


@njit(cache=True, inline="always")
def _philox_block(block, stream, k0, k1):
    """One Philox4x32-10 block (all arguments uint64 holding 32-bit values but `block`); lanes as uint64."""
    c0 = block & MASK_32
    c1 = block >> SHIFT_32
    c2 = stream
    c3 = ZERO
    for _ in range(philox.ROUNDS):
        product_0 = c0 * MULTIPLIER_0
        product_1 = c2 * MULTIPLIER_1
        c0 = (product_1 >> SHIFT_32) ^ c1 ^ k0
        c1 = product_1 & MASK_32
        c2 = (product_0 >> SHIFT_32) ^ c3 ^ k1
        c3 = product_0 & MASK_32
        k0 = (k0 + WEYL_0) & MASK_32
        k1 = (k1 + WEYL_1) & MASK_32
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def _fill_words(first_block, count, stream, k0, k1, out):
    """Blocks [first_block, first_block + count) into out[0 : 4 * count] (uint32, word order)."""
    for i in range(count):
        c0, c1, c2, c3 = _philox_block(first_block + np.uint64(i), stream, k0, k1)
        out[4 * i] = np.uint32(c0)
        out[4 * i + 1] = np.uint32(c1)
        out[4 * i + 2] = np.uint32(c2)
        out[4 * i + 3] = np.uint32(c3)


@njit(cache=True, parallel=True)
def _philox_fill(first_block, stream, k0, k1, out):
    pieces = (out.shape[0] // 4 + FILL_BLOCKS - 1) // FILL_BLOCKS
    for piece in prange(pieces):
        low = piece * FILL_BLOCKS
        count = min(out.shape[0] // 4, low + FILL_BLOCKS) - low
        _fill_words(first_block + np.uint64(low), count, stream, k0, k1, out[4 * low : 4 * (low + count)])


def philox_words(seed: int, stream: int, first_word: int, count: int) -> np.ndarray:
    """Words [first_word, first_word + count) of `stream` under `seed` as uint32, on every core.

    Same contract and same bits as forge_pipeline.execute.philox.philox_words (the NumPy reference).
    """
    philox.check_word_range(seed, stream, first_word, count)
    first_block = first_word // 4
    blocks = (first_word + count + 3) // 4 - first_block
    out = np.empty(4 * blocks, dtype=np.uint32)
    _philox_fill(np.uint64(first_block), np.uint64(stream), np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32),
                 out)
    offset = first_word - 4 * first_block
    return out[offset : offset + count]


@njit(cache=True, parallel=True)
def _portfolio_losses(k0, k1, thresholds, exposures, start, stop, losses):
    obligors = thresholds.shape[0]
    per_piece = max(1, PIECE_WORDS // obligors)
    rows = max(1, 4 * BUFFER_BLOCKS // obligors)  # scenarios whose words one buffer holds (at least one)
    pieces = (stop - start + per_piece - 1) // per_piece
    for piece in prange(pieces):
        buffer = np.empty(rows * obligors + 8, dtype=np.uint32)
        first = start + piece * per_piece
        last = min(stop, first + per_piece)
        for row in range(first, last, rows):
            count = min(rows, last - row)
            word = np.uint64(row) * np.uint64(obligors)
            block = word >> np.uint64(2)
            offset = np.int64(word & np.uint64(3))
            _fill_words(block, (offset + count * obligors + 3) // 4, ZERO, k0, k1, buffer)
            for scenario in range(count):
                base = offset + scenario * obligors
                loss = np.int64(0)
                for k in range(obligors):
                    loss += exposures[k] if np.uint64(buffer[base + k]) < thresholds[k] else 0
                losses[row - start + scenario] = loss


def portfolio_losses(seed: int, thresholds: np.ndarray, exposures: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Loss of scenarios [start, stop) (int64[stop - start]): the sum of exposures[k] (int64[K]) over obligors whose
    word j*K + k of stream 0 is below thresholds[k] (uint64[K], at most 2^32). Draws are generated a few whole
    scenarios at a time into an L1-sized buffer and compared there, never stored."""
    losses = np.empty(stop - start, dtype=np.int64)
    _portfolio_losses(np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32), thresholds.astype(np.uint64),
                      exposures.astype(np.int64), start, stop, losses)
    return losses


@njit(cache=True)
def _loss_summary(losses, total_exposure, bins, histogram):
    total, largest = np.int64(0), np.int64(0)
    for loss in losses:
        total += loss
        largest = max(largest, loss)
        histogram[0 if total_exposure == 0 else min(bins - 1, (loss * bins) // total_exposure)] += 1
    return total, largest


def loss_summary(losses: np.ndarray, total_exposure: int, bins: int, keep: int) -> tuple[int, int, np.ndarray,
                                                                                          np.ndarray]:
    """(Σ losses, max loss, histogram int64[bins], the `keep` largest losses descending): one pass and a partition."""
    histogram = np.zeros(bins, dtype=np.int64)
    total, largest = _loss_summary(losses, np.int64(total_exposure), np.int64(bins), histogram)
    tail = np.partition(losses, losses.size - keep)[losses.size - keep :] if keep else losses[:0]
    return int(total), int(largest), histogram, np.sort(tail)[::-1]


@njit(cache=True, parallel=True)
def filter_images(images, single_rounding, out):
    """3x3 [1,2,1;2,4,2;1,2,1] blur (edges replicated) and 2x2 downsample of uint8 images (count, h, w) into out
    (count, h // 2, w // 2). `single_rounding` False: image_filter@1, blur rounded ((s + 8) >> 4) then
    averaged ((a + b + c + d + 2) >> 2); True: image_filter@2, one rounding of the exact value ((Σ s + 32) >> 6)."""
    count, height, width = images.shape
    for image in prange(count):
        upper = np.empty(width, dtype=np.int32)
        lower = np.empty(width, dtype=np.int32)
        for row in range(height // 2):
            top, bottom = 2 * row, 2 * row + 1
            above, below = max(top - 1, 0), min(bottom + 1, height - 1)
            for x in range(width):
                upper[x] = images[image, above, x] + 2 * np.int32(images[image, top, x]) + images[image, bottom, x]
                lower[x] = images[image, top, x] + 2 * np.int32(images[image, bottom, x]) + images[image, below, x]
            for column in range(width // 2):
                left, right = 2 * column, 2 * column + 1
                before, after = max(left - 1, 0), min(right + 1, width - 1)
                a = upper[before] + 2 * upper[left] + upper[right]
                b = upper[left] + 2 * upper[right] + upper[after]
                c = lower[before] + 2 * lower[left] + lower[right]
                d = lower[left] + 2 * lower[right] + lower[after]
                if single_rounding:
                    out[image, row, column] = np.uint8((a + b + c + d + 32) >> 6)
                else:
                    out[image, row, column] = np.uint8((((a + 8) >> 4) + ((b + 8) >> 4) + ((c + 8) >> 4)
                                                        + ((d + 8) >> 4) + 2) >> 2)


@njit(cache=True, parallel=True)
def pagerank_ranks(sources, iterations, numerator, denominator, divisor, in_offsets, in_sources, one,
                   split_product, ranks):
    """Fixed-point personalized PageRank of each source into ranks[b, :] (int64, sums to `one` per row).

    share_u = floor(floor(r_u * numerator / denominator) / divisor_u); r·n/d is computed as
    (r div d)·n + floor((r mod d)·n / d) when `split_product` (personalized_pagerank@2, where r·n
    would overflow), directly otherwise (@1). next_v = Σ share over in-edges; the unpushed mass
    returns to the source. One source per prange item: its rows are its own.
    """
    nodes = divisor.shape[0]
    for b in prange(sources.shape[0]):
        source = sources[b]
        rank = ranks[b]
        share = np.empty(nodes, dtype=np.int64)
        rank[:] = 0
        rank[source] = one
        for _ in range(iterations):
            for u in range(nodes):
                r = rank[u]
                if split_product:
                    damped = (r // denominator) * numerator + (r % denominator) * numerator // denominator
                else:
                    damped = r * numerator // denominator
                share[u] = damped // divisor[u]
            total = np.int64(0)
            for v in range(nodes):
                pulled = np.int64(0)
                for e in range(in_offsets[v], in_offsets[v + 1]):
                    pulled += share[in_sources[e]]
                rank[v] = pulled
                total += pulled
            rank[source] += one - total


GROUP_PIECES = 16  # fixed row ranges of a grouped_sum shard, each with its own partial sums, added in order


@njit(cache=True, parallel=True)
def _grouped_generated(k0, k1, groups, value_range, start, stop, sums, counts):
    rows = stop - start
    for piece in prange(GROUP_PIECES):
        first = start + rows * piece // GROUP_PIECES
        last = start + rows * (piece + 1) // GROUP_PIECES
        key_words = np.empty(4 * BUFFER_BLOCKS + 8, dtype=np.uint32)
        value_words = np.empty(4 * BUFFER_BLOCKS + 8, dtype=np.uint32)
        for row in range(first, last, 4 * BUFFER_BLOCKS):
            count = min(4 * BUFFER_BLOCKS, last - row)
            offset = row & 3
            block = np.uint64(row) >> np.uint64(2)
            _fill_words(block, (offset + count + 3) // 4, ZERO, k0, k1, key_words)
            _fill_words(block, (offset + count + 3) // 4, np.uint64(1), k0, k1, value_words)
            for i in range(offset, offset + count):
                key = np.int64((np.uint64(key_words[i]) * groups) >> SHIFT_32)
                sums[piece, key] += np.int64((np.uint64(value_words[i]) * value_range) >> SHIFT_32)
                counts[piece, key] += 1


def grouped_generated(seed: int, groups: int, value_max: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """grouped_sum@1's generated rows [start, stop) accumulated without storing them: (sums, counts), int64[groups].

    Row r's key is (word r of stream 0 · groups) >> 32, its value (word r of stream 1 · (value_max + 1)) >> 32,
    as in the NumPy path; each of GROUP_PIECES fixed row ranges sums into its own row, and the rows are added
    in order (integers, so exactly)."""
    sums = np.zeros((GROUP_PIECES, groups), dtype=np.int64)
    counts = np.zeros((GROUP_PIECES, groups), dtype=np.int64)
    _grouped_generated(np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32), np.uint64(groups),
                       np.uint64(value_max + 1), start, stop, sums, counts)
    return sums.sum(axis=0), counts.sum(axis=0)
