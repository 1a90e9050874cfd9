"""The one RFC 6962/9162 Merkle tree: roots, inclusion and consistency proofs against the RFC's recursive
definitions written out plainly, and the verifiers refusing anything changed."""

import hashlib

import pytest

from forge_pipeline.merkle import (EMPTY_ROOT, MerkleFrontier, MerkleTree, ProofInvalid, leaf_hash, node_hash,
                                   root_of_hex_leaves, verify_consistency, verify_inclusion)


def reference_root(leaves):
    """RFC 6962 §2.1 MTH, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def reference_path(m, leaves):
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return reference_path(m, leaves[:k]) + [reference_root(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [reference_root(leaves[:k])]


def reference_subproof(m, leaves, complete):
    if m == len(leaves):
        return [] if complete else [reference_root(leaves)]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m <= k:
        return reference_subproof(m, leaves[:k], complete) + [reference_root(leaves[k:])]
    return reference_subproof(m - k, leaves[k:], False) + [reference_root(leaves[:k])]


LEAVES = [leaf_hash(index.to_bytes(4, "big")) for index in range(37)]


def test_roots_match_the_rfc_definition_for_every_size():
    """The level-stored tree, the frontier and the RFC recursion agree on the root of every prefix up to 37 leaves."""
    tree, frontier = MerkleTree(LEAVES), MerkleFrontier()
    assert tree.root(0) == frontier.root() == EMPTY_ROOT
    for size in range(1, len(LEAVES) + 1):
        frontier.append(LEAVES[size - 1])
        assert tree.root(size) == MerkleTree(LEAVES[:size]).root(None) == frontier.root() == reference_root(LEAVES[:size])
        assert MerkleFrontier.from_text(size, frontier.to_text()).root() == frontier.root()


def test_evidence_root_is_rfc_6962_over_digest_bytes():
    """The evidence bundle's root over hex digests is MTH over the digests' bytes (the value bundles already hold)."""
    digests = [hashlib.sha256(bytes([index])).hexdigest() for index in range(5)]
    assert root_of_hex_leaves(digests) == reference_root([leaf_hash(bytes.fromhex(d)) for d in digests]).hex()
    assert root_of_hex_leaves([]) == hashlib.sha256(b"").hexdigest()


def test_proofs_match_the_rfc_and_verify_for_every_leaf_and_size():
    """Every inclusion proof (any leaf, any older size) and consistency proof (any pair of sizes) equals the RFC's and verifies."""
    tree = MerkleTree(LEAVES)
    for size in range(1, len(LEAVES) + 1):
        root = tree.root(size)
        for index in range(size):
            path = tree.inclusion_proof(index, size)
            assert path == reference_path(index, LEAVES[:size])
            verify_inclusion(LEAVES[index], index, size, path, root)
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == reference_subproof(old, LEAVES[:size], True)
            verify_consistency(old, size, tree.root(old), root, proof)


def test_changed_proofs_are_refused():
    """A changed leaf, path node, index or root, and a truncated or extended proof, all fail verification (a size
    alone can change unnoticed where the path's shape allows: the checkpoint signs size and root together)."""
    tree = MerkleTree(LEAVES)
    size, index = 37, 21
    path, root = tree.inclusion_proof(index, size), tree.root(size)
    flipped = bytes([path[1][0] ^ 1]) + path[1][1:]
    for arguments in [(LEAVES[index + 1], index, size, path, root), (LEAVES[index], index + 1, size, path, root),
                      (LEAVES[index], index, size - 6, path, root), (LEAVES[index], index, size, path[:-1], root),
                      (LEAVES[index], index, size, [*path, path[0]], root),
                      (LEAVES[index], index, size, [path[0], flipped, *path[2:]], root),
                      (LEAVES[index], index, size, path, tree.root(size - 1)), (LEAVES[index], size, size, path, root)]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(*arguments)
    proof = tree.consistency_proof(13, size)
    for arguments in [(13, size, tree.root(12), root, proof), (13, size, tree.root(13), tree.root(36), proof),
                      (12, size, tree.root(13), root, proof), (13, size, tree.root(13), root, proof[:-1]),
                      (13, size, tree.root(13), root, [*proof, proof[0]]), (13, size, tree.root(13), root, []),
                      (0, size, EMPTY_ROOT, root, proof), (size, 13, root, tree.root(13), proof)]:
        with pytest.raises(ProofInvalid):
            verify_consistency(*arguments)
