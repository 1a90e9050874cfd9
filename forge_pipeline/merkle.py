"""The one Merkle tree of the project: RFC 6962 / RFC 9162 §2.1 (Certificate Transparency).

    leaf hash  = sha256(0x00 ‖ leaf data)
    node hash  = sha256(0x01 ‖ left ‖ right)
    MTH(D[n])  = sha256() for n = 0; the leaf hash for n = 1; else, with k the largest power
                 of two below n, node(MTH(D[0:k]), MTH(D[k:n])).

Evidence bundles use it over shard digests, the ledger over entry hashes (leaf data: the 32
bytes a 64-hex-digit digest spells). Inclusion proofs (RFC 9162 §2.1.3) show that a leaf is
in a tree of a given size and root; consistency proofs (§2.1.4) show that a tree of size m is
a prefix of a tree of size n. The verifiers below need nothing but the proof, so an auditor
checks them without the database.

Hashes are 32-byte `bytes` inside; hex text at the edges (roots, proofs as JSON).
No imports beyond the standard library: the standalone verifier runs with this alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofInvalid(ValueError):
    """A proof that does not prove what it claims; the message says which part fails."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of_hex_leaves(leaf_digests: Iterable[str]) -> str:
    """MTH (hex) over leaves whose data are the bytes of 64-hex-digit digests, in order
    (the evidence bundle's shard digests, the ledger's entry hashes)."""
    return MerkleTree([leaf_hash(bytes.fromhex(digest)) for digest in leaf_digests]).root(None).hex()


def _split(size: int) -> int:
    """The largest power of two strictly below `size` (size ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """Every level of the tree over `leaf_hashes` (32-byte leaf hashes), kept as one bytes
    object per level, so a proof reads O(log n) stored nodes: level h holds the hashes of the
    aligned subtrees of 2^h leaves (the last one partial), which are exactly RFC 6962's
    subtrees over D[j·2^h : min((j+1)·2^h, n)]. Proofs are for any tree size up to the
    number of leaves (an older checkpoint's tree is a prefix of this one)."""

    def __init__(self, leaf_hashes: Sequence[bytes]):
        self.size = len(leaf_hashes)
        level = b"".join(leaf_hashes)
        if len(level) != self.size * HASH_BYTES:
            raise ValueError("leaf hashes must be 32 bytes each")
        self._levels = [level]
        sha256, prefix = hashlib.sha256, b"\x01"
        while len(level) > HASH_BYTES:
            count = len(level) // HASH_BYTES
            paired = b"".join(sha256(prefix + level[offset:offset + 2 * HASH_BYTES]).digest()
                              for offset in range(0, (count - 1) * HASH_BYTES, 2 * HASH_BYTES))
            level = paired + (level[-HASH_BYTES:] if count % 2 else b"")
            self._levels.append(level)

    def root(self, size: int | None) -> bytes:
        """MTH of the first `size` leaves (all of them for None)."""
        size = self.size if size is None else self._checked_size(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size]): the audit path of leaf `index` (0-based)."""
        size = self.size if size is None else self._checked_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        path, start, end = [], 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._subtree(start + k, end))
                end = start + k
            else:
                path.append(self._subtree(start, start + k))
                start += k
        return path[::-1]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size]): that the tree of `old_size` leaves is a prefix."""
        new_size = self.size if new_size is None else self._checked_size(new_size)
        if not 0 < old_size <= new_size:
            raise ValueError(f"a consistency proof needs 0 < old size ≤ new size, got {old_size} and {new_size}")
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while True:  # SUBPROOF(m, D[start:end], complete), unrolled: each step goes into one half
            if m == end - start:
                if not complete:
                    proof.append(self._subtree(start, end))
                return proof[::-1]
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False

    def _checked_size(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not between 0 and {self.size} leaves")
        return size

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for an RFC 6962 subtree: a stored node when it is one (aligned, and
        whole or ending at the last leaf), else its two halves, recursively (the right edge of
        a tree smaller than this one: at most log n steps)."""
        height = (end - start - 1).bit_length()
        if start % (1 << height) == 0 and (end - start == 1 << height or end == self.size):
            offset = (start >> height) * HASH_BYTES
            return self._levels[height][offset:offset + HASH_BYTES]
        k = _split(end - start)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))


class MerkleFrontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves (one per set bit
    of size, largest first): enough to extend the tree leaf by leaf and to give its root
    without keeping the leaves. The ledger keeps one as it posts and as it verifies."""

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        if len(nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} nodes, got {len(nodes)}")
        self.size, self.nodes = size, list(nodes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (a merge per trailing one-bit of the old size: two hashes per leaf on average)."""
        nodes, size, node = self.nodes, self.size, leaf
        while size & 1:
            node = node_hash(nodes.pop(), node)
            size >>= 1
        nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtree roots folded from the right (RFC 6962's split)."""
        if not self.nodes:
            return EMPTY_ROOT
        node = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            node = node_hash(left, node)
        return node

    def to_text(self) -> str:
        return "".join(node.hex() for node in self.nodes)

    @classmethod
    def from_text(cls, size: int, text: str) -> MerkleFrontier:
        raw = bytes.fromhex(text)
        return cls(size, [raw[offset:offset + HASH_BYTES] for offset in range(0, len(raw), HASH_BYTES)])


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise ProofInvalid unless `path` proves leaf hash `leaf` at `index` of the tree
    of `size` leaves whose root is `root`."""
    if not 0 <= index < size:
        raise ProofInvalid(f"leaf index {index} is not in a tree of {size} leaves")
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ProofInvalid("the audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("the audit path is shorter than the tree is deep")
    if node != root:
        raise ProofInvalid(f"the audit path leads to root {node.hex()}, not {root.hex()}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofInvalid unless `proof` shows the tree (old_size, old_root) is a
    prefix of the tree (new_size, new_root)."""
    if not 0 < old_size <= new_size:
        raise ProofInvalid(f"a consistency proof needs 0 < old size ≤ new size, got {old_size} and {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofInvalid("trees of the same size need an empty proof")
        if old_root != new_root:
            raise ProofInvalid("trees of the same size have different roots")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        raise ProofInvalid("the proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first, *rest = path
    fr = sr = first
    for node in rest:
        if sn == 0:
            raise ProofInvalid("the proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("the proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofInvalid(f"the proof rebuilds old root {fr.hex()}, not {old_root.hex()}")
    if sr != new_root:
        raise ProofInvalid(f"the proof rebuilds new root {sr.hex()}, not {new_root.hex()}")
