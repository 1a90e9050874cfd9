"""The standalone verifier of ledger proofs: the public key, the checkpoint and the proof, nothing else.

    python -m forge_pipeline.ledger.proof_check --public-key ledger-signing.key.pub PROOF.json

PROOF.json is what `forge-pool ledger prove` prints: an inclusion proof (one entry, or a JSON
list of them for a transaction) or a consistency proof. Exit 0 when every proof holds, 1 when
one does not (the reason on stdout), 2 for unreadable input. It imports the standard library,
`cryptography` and four small modules of this package (canonical JSON, the entry hash, the
Merkle tree, checkpoints): no database driver, no SQLAlchemy, no Dagster, so an auditor can
run it anywhere, on a copy of this folder.

For each inclusion proof it checks: the entry's hash recomputed from its fields (chain.py), the
audit path from that leaf to the checkpoint's Merkle root (RFC 9162 §2.1.3.2), the leaf index
matching the entry's sequence number and the checkpoint's signature by a given public key.
For a consistency proof: both checkpoints' signatures and the proof (RFC 9162 §2.1.4.2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forge_pipeline.ledger.chain import HASHED_FIELDS, entry_hash
from forge_pipeline.ledger.checkpoints import CheckpointInvalid, check_signature, parse_checkpoint
from forge_pipeline.ledger.signing import SigningKeyProblem, key_id, read_public_key
from forge_pipeline.merkle import ProofInvalid, leaf_hash, verify_consistency, verify_inclusion

INCLUSION_FORMAT = "forge-ledger-inclusion/1"
CONSISTENCY_FORMAT = "forge-ledger-consistency/1"
PROOF_BYTES_MAX = 64 * 1024 * 1024


def verify_proof(proof: Any, public_keys: Sequence[bytes]) -> str:
    """A one-line summary of what `proof` proves; ProofInvalid (or CheckpointInvalid) saying why not."""
    keys = {key_id(public_key): public_key for public_key in public_keys}
    if not isinstance(proof, dict) or proof.get("format") not in (INCLUSION_FORMAT, CONSISTENCY_FORMAT):
        raise ProofInvalid(f"format must be {INCLUSION_FORMAT!r} or {CONSISTENCY_FORMAT!r}")
    if proof["format"] == INCLUSION_FORMAT:
        return _inclusion(proof, keys)
    return _consistency(proof, keys)


def _inclusion(proof: Mapping[str, Any], keys: Mapping[str, bytes]) -> str:
    checkpoint = parse_checkpoint(proof.get("checkpoint"), "checkpoint")
    check_signature(checkpoint, keys, "checkpoint")
    entry = proof.get("entry")
    if not isinstance(entry, dict) or set(entry) != {*HASHED_FIELDS, "entry_hash"} or type(entry["sequence"]) is not int:
        raise ProofInvalid(f"entry must hold exactly the fields {', '.join((*HASHED_FIELDS, 'entry_hash'))}, "
                           "sequence an integer")
    try:
        computed = entry_hash(entry)
    except (TypeError, ValueError) as error:
        raise ProofInvalid(f"entry cannot be hashed: {error}") from None
    if computed != entry["entry_hash"]:
        raise ProofInvalid(f"entry {entry['sequence']} hashes to {computed}, not its entry_hash: the entry was changed")
    index, size, path = proof.get("leaf_index"), proof.get("tree_size"), proof.get("audit_path")
    if index != entry["sequence"] - 1 or size != checkpoint["size"]:
        raise ProofInvalid("leaf_index must be the entry's sequence − 1 and tree_size the checkpoint's size")
    verify_inclusion(leaf_hash(bytes.fromhex(computed)), index, size, _hashes(path, "audit_path"),
                     bytes.fromhex(checkpoint["merkle_root"]))
    return (f"entry {entry['sequence']} ({entry['transaction_id']}, {entry['account']}, {entry['amount_ucr']} µcr) "
            f"is in the ledger of checkpoint size {size}, root {checkpoint['merkle_root'][:16]}…, "
            f"signed by key {checkpoint['key_id'][:16]}…")


def _consistency(proof: Mapping[str, Any], keys: Mapping[str, bytes]) -> str:
    old, new = parse_checkpoint(proof.get("old"), "old"), parse_checkpoint(proof.get("new"), "new")
    check_signature(old, keys, "old")
    check_signature(new, keys, "new")
    verify_consistency(old["size"], new["size"], bytes.fromhex(old["merkle_root"]), bytes.fromhex(new["merkle_root"]),
                       _hashes(proof.get("proof"), "proof"))
    return (f"the ledger of checkpoint size {old['size']} ({old['time']}) is a prefix of the ledger of checkpoint "
            f"size {new['size']} ({new['time']})")


def _hashes(values: Any, name: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(value, str) and len(value) == 64 for value in values):
        raise ProofInvalid(f"{name} must be a list of 64-hex-digit hashes")
    try:
        return [bytes.fromhex(value) for value in values]
    except ValueError:
        raise ProofInvalid(f"{name} must be a list of 64-hex-digit hashes") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forge_pipeline.ledger.proof_check",
                                     description="check ledger proofs with the public key alone")
    parser.add_argument("--public-key", action="append", required=True, metavar="PEM",
                        help="a public key the checkpoints may be signed with (repeat for rotated keys)")
    parser.add_argument("proof", metavar="PROOF.json")
    arguments = parser.parse_args(argv)
    try:
        public_keys = [read_public_key(Path(path)) for path in arguments.public_key]
        text = Path(arguments.proof).read_bytes()[:PROOF_BYTES_MAX + 1]
        if len(text) > PROOF_BYTES_MAX:
            raise ValueError(f"more than {PROOF_BYTES_MAX} bytes")
        document = json.loads(text)
    except (SigningKeyProblem, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RecursionError:  # nesting deeper than any proof: the C parser gives up on the stack
        print("error: malformed proof (nested too deeply)", file=sys.stderr)
        return 2
    proofs = document if isinstance(document, list) else [document]
    for number, proof in enumerate(proofs, 1):
        try:
            print(f"valid: {verify_proof(proof, public_keys)}")
        except (ProofInvalid, CheckpointInvalid, TypeError, KeyError, AttributeError, ValueError) as error:
            print(f"INVALID (proof {number} of {len(proofs)}): {error}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
