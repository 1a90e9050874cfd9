"""Philox4x32-10 (Random123, Salmon et al., SC11) on NumPy, bit-identical to kernels/philox.cuh.

Word `e` of stream `s` under seed `S` is lane `e mod 4` of the block with counter
(`b mod 2^32`, `b >> 32`, `s`, 0), `b = e div 4`, key (`S mod 2^32`, `S >> 32`)
(DESIGN §3.3). Indices are global to the workload, never local to a shard.

The rounds run on uint64 arrays holding 32-bit values, in place, over cache-sized
chunks: a 32x32->64 product is one uint64 multiply, its high and low halves a shift
and a mask.
"""

from __future__ import annotations

import numpy as np

MULTIPLIER_0 = 0xD2511F53
MULTIPLIER_1 = 0xCD9E8D57
WEYL_0 = 0x9E3779B9
WEYL_1 = 0xBB67AE85
ROUNDS = 10
MASK_32 = 0xFFFFFFFF
# Blocks per chunk: large enough that the ~100 ufunc calls per chunk cost nothing; 2^15 to
# 2^17 measure alike on the CI machine (`make bench`, Philox line), 2^13 is slower.
CHUNK_BLOCKS = 1 << 16


def split_seed(seed: int) -> tuple[int, int]:
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be a uint64, got {seed}")
    return seed & MASK_32, seed >> 32


def philox4x32_10(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """One block in plain Python: the readable reference the array paths are tested against."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(ROUNDS):
        if round_index:
            k0, k1 = (k0 + WEYL_0) & MASK_32, (k1 + WEYL_1) & MASK_32
        product_0 = MULTIPLIER_0 * c0
        product_1 = MULTIPLIER_1 * c2
        c0, c1, c2, c3 = (
            (product_1 >> 32) ^ c1 ^ k0,
            product_1 & MASK_32,
            (product_0 >> 32) ^ c3 ^ k1,
            product_0 & MASK_32,
        )
    return c0, c1, c2, c3


def _blocks(seed: int, stream: int, first_block: int, out: np.ndarray, work: np.ndarray) -> None:
    """Write len(out) blocks starting at block `first_block` into out[(count, 4)] uint32, computing in
    `work` (7 uint64 rows of at least count: c0..c3, two products, block offsets 0, 1, 2, ...)."""
    count = len(out)
    k0, k1 = split_seed(seed)
    c0, c1, c2, c3, product_0, product_1, offsets = (row[:count] for row in work)
    m0, m1, shift, mask = np.uint64(MULTIPLIER_0), np.uint64(MULTIPLIER_1), np.uint64(32), np.uint64(MASK_32)
    np.add(offsets, np.uint64(first_block), out=product_0)  # the block numbers
    np.bitwise_and(product_0, mask, out=c0)
    np.right_shift(product_0, shift, out=c1)
    c2.fill(stream)
    c3.fill(0)
    for round_index in range(ROUNDS):
        if round_index:
            k0, k1 = (k0 + WEYL_0) & MASK_32, (k1 + WEYL_1) & MASK_32
        np.multiply(c0, m0, out=product_0)
        np.multiply(c2, m1, out=product_1)
        # new c0 = hi(p1) ^ c1 ^ k0 ; new c1 = lo(p1) ; new c2 = hi(p0) ^ c3 ^ k1 ; new c3 = lo(p0)
        np.right_shift(product_1, shift, out=c0)
        np.bitwise_xor(c0, c1, out=c0)
        np.bitwise_xor(c0, np.uint64(k0), out=c0)
        np.bitwise_and(product_1, mask, out=c1)
        np.right_shift(product_0, shift, out=c2)
        np.bitwise_xor(c2, c3, out=c2)
        np.bitwise_xor(c2, np.uint64(k1), out=c2)
        np.bitwise_and(product_0, mask, out=c3)
    out[:, 0] = c0
    out[:, 1] = c1
    out[:, 2] = c2
    out[:, 3] = c3


def check_word_range(seed: int, stream: int, first_word: int, count: int) -> None:
    """ValueError unless seed is a uint64, stream a uint32 and the word range non-negative (every backend's check)."""
    split_seed(seed)
    if count < 0 or first_word < 0:
        raise ValueError("word range must be non-negative")
    if not 0 <= stream <= MASK_32:
        raise ValueError(f"stream must be a uint32, got {stream}")


def philox_words(seed: int, stream: int, first_word: int, count: int) -> np.ndarray:
    """Words [first_word, first_word + count) of `stream` as a uint32 array."""
    check_word_range(seed, stream, first_word, count)
    first_block = first_word // 4
    last_block = (first_word + count + 3) // 4
    blocks = np.empty((last_block - first_block, 4), dtype=np.uint32)
    # One work area for every chunk: allocating per chunk made glibc map and unmap it each
    # time (arrays of 128 KiB and more are mmapped), a page fault per page, per chunk.
    work = np.empty((7, min(CHUNK_BLOCKS, len(blocks))), dtype=np.uint64)
    work[6] = np.arange(work.shape[1], dtype=np.uint64)
    for start in range(first_block, last_block, CHUNK_BLOCKS):
        stop = min(last_block, start + CHUNK_BLOCKS)
        _blocks(seed, stream, start, blocks[start - first_block : stop - first_block], work)
    offset = first_word - first_block * 4
    return blocks.reshape(-1)[offset : offset + count]
