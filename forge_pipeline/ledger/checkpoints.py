"""Signed checkpoints of the ledger, kept outside its database (docs/ledger-integrity.md).

A checkpoint is a JSON object:

    {"format": "forge-ledger-checkpoint/1", "size": N, "head_hash": <entry_hash of entry N>,
     "merkle_root": <RFC 6962 root over the entry hashes of entries 1..N>, "time": <UTC ISO>,
     "key_id": <sha256 hex of the signing public key>, "signature": <Ed25519, 128 hex digits>}

The signature is over the canonical JSON of every field but `signature`. Checkpoints are
appended, one per line, to the checkpoint log `FORGE_HOME/ledger/checkpoints.jsonl`;
statements and exports carry a copy, and an auditor keeps any of them as a file.

No SQLAlchemy or Dagster here: the standalone verifier reads checkpoints with this module.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger.signing import Signer, signature_valid

FORMAT = "forge-ledger-checkpoint/1"
FIELDS = ("format", "size", "head_hash", "merkle_root", "time", "key_id", "signature")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
LOG_LINE_BYTES_MAX = 4_096


class CheckpointInvalid(ValueError):
    """A checkpoint that is malformed or not signed by the key it names; the message names the field."""


def signed_body(checkpoint: Mapping[str, Any]) -> bytes:
    """What the signature covers: the canonical JSON of every field but the signature."""
    return canonical_json({name: checkpoint[name] for name in FIELDS if name != "signature"})


def sign_checkpoint(signer: Signer, size: int, head_hash: str, merkle_root: str, time: str) -> dict:
    checkpoint = {"format": FORMAT, "size": size, "head_hash": head_hash, "merkle_root": merkle_root, "time": time,
                  "key_id": signer.key_id}
    return {**checkpoint, "signature": signer.sign(signed_body({**checkpoint, "signature": ""}))}


def parse_checkpoint(document: Any, source: str) -> dict:
    """A checkpoint with every field checked (CheckpointInvalid naming `source` and the field); the
    signature is checked by `check_signature` with a key the caller trusts."""
    if not isinstance(document, dict):
        raise CheckpointInvalid(f"{source}: a checkpoint is a JSON object")
    unknown, missing = set(document) - set(FIELDS), [name for name in FIELDS if name not in document]
    if unknown or missing:
        raise CheckpointInvalid(f"{source}: fields must be exactly {', '.join(FIELDS)}"
                                f"{f'; missing {missing}' if missing else ''}{f'; unknown {sorted(unknown)}' if unknown else ''}")
    rules = (("format", lambda value: value == FORMAT, f"must be {FORMAT!r}"),
             ("size", lambda value: type(value) is int and value >= 0, "must be an integer ≥ 0"),
             ("head_hash", lambda value: isinstance(value, str) and _HEX64.fullmatch(value), "must be 64 hex digits"),
             ("merkle_root", lambda value: isinstance(value, str) and _HEX64.fullmatch(value), "must be 64 hex digits"),
             ("time", lambda value: isinstance(value, str) and _TIME.fullmatch(value), "must be UTC ISO text"),
             ("key_id", lambda value: isinstance(value, str) and _HEX64.fullmatch(value), "must be 64 hex digits"),
             ("signature", lambda value: isinstance(value, str) and _HEX128.fullmatch(value),
              "must be 128 hex digits"))
    for name, rule, requirement in rules:
        if not rule(document[name]):
            raise CheckpointInvalid(f"{source}: {name} {requirement}, got {document[name]!r}")
    return dict(document)


def check_signature(checkpoint: Mapping[str, Any], public_keys: Mapping[str, bytes], source: str) -> None:
    """CheckpointInvalid unless the checkpoint is signed by the key it names, one of `public_keys` (by key id)."""
    public_key = public_keys.get(checkpoint["key_id"])
    if public_key is None:
        raise CheckpointInvalid(f"{source}: signed by key {checkpoint['key_id'][:16]}…, which is not the ledger's "
                                "(the public key file, or a key the ledger announced)")
    if not signature_valid(public_key, signed_body(checkpoint), checkpoint["signature"]):
        raise CheckpointInvalid(f"{source}: the signature does not match its content: the checkpoint was altered")


def describe(checkpoint: Mapping[str, Any], source: str) -> str:
    return f"checkpoint {source} (size {checkpoint['size']}, {checkpoint['time']})"


def read_checkpoint_file(path: Path) -> dict:
    """One checkpoint kept as a JSON file (or a statement's `checkpoint.json`)."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise CheckpointInvalid(f"{path}: cannot read: {error.strerror}") from None
    if len(text) > LOG_LINE_BYTES_MAX:
        raise CheckpointInvalid(f"{path}: more than {LOG_LINE_BYTES_MAX} bytes: not a checkpoint")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise CheckpointInvalid(f"{path}: not JSON: {error}") from None
    return parse_checkpoint(document, str(path))


def checkpoint_log_path() -> Path:
    from forge_pipeline.home import forge_home

    return forge_home() / "ledger" / "checkpoints.jsonl"


def read_checkpoint_log(path: Path | None = None) -> list[tuple[str, dict]]:
    """(source, checkpoint) for each line of the log, `source` naming the line; [] when there is no log."""
    path = path or checkpoint_log_path()
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    logged = []
    for number, line in enumerate(lines, 1):
        source = f"{path}:{number}"
        try:
            document = json.loads(line)
        except ValueError as error:
            raise CheckpointInvalid(f"{source}: not JSON: {error}") from None
        logged.append((source, parse_checkpoint(document, source)))
    return logged


def append_to_log(checkpoint: Mapping[str, Any], path: Path | None = None) -> Path:
    """Append one line (O_APPEND: concurrent writers never interleave a line) and fsync it."""
    path = path or checkpoint_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = canonical_json(dict(checkpoint)) + b"\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path
