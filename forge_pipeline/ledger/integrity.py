"""Everything that holds the ledger to account, for `forge-pool ledger ...` and the settlement checks.

- `check_ledger`: the hash chain, every signed write, every known checkpoint (the local log and
  any the caller adds), and the derived tables (`usage_records`, `workloads`) against the
  workload records in the chain.
- `checkpoint_ledger`: verify, then sign a checkpoint of what was verified and append it to the log.
- `rotate_signing_key`: announce a new key in an entry signed by the old one, then switch.
- `inclusion_proof`, `consistency_proof`: RFC 9162 proofs an auditor checks with
  `python -m forge_pipeline.ledger.proof_check` (no database needed).

What each of these catches, and what none of them can, is in docs/ledger-integrity.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, literal, select

from forge_pipeline.ledger import checkpoints as checkpoint_log
from forge_pipeline.ledger.chain import HASHED_FIELDS
from forge_pipeline.ledger.proof_check import CONSISTENCY_FORMAT, INCLUSION_FORMAT
from forge_pipeline.ledger.ledger import (ROTATION_ACCOUNT, ROTATION_KIND, LedgerCorrupt, Trust, VerifyResult,
                                          post_transaction, verify_ledger)
from forge_pipeline.ledger.signing import (SigningKeyProblem, activate_next_key, load_signer, public_key_path,
                                           read_public_key, signing_key_path, stage_next_key)
from forge_pipeline.merkle import MerkleTree, leaf_hash
from forge_pipeline.states import State
from forge_pipeline.storage.database import ledger_entries, usage_records, utc_now, workloads

DERIVED_PROBLEMS_MAX = 20
PROOF_ROWS_PER_FETCH = 100_000
# The workloads columns a usage record (chained as the memo of `workload:<id>`) also holds.
WORKLOAD_RECORD_FIELDS = ("request_id", "organization", "project", "workspace", "adapter", "primitive", "profile",
                          "seed")
# States a workload may be in once its record is chained (Aggregating: finalization posted the
# record and was interrupted before the state change) and states that need a chained record.
RECORDED_STATES = frozenset({State.AGGREGATING.value, State.FINALIZED.value, State.DISPUTED.value})
NEEDS_RECORD_STATES = frozenset({State.FINALIZED.value, State.DISPUTED.value})


@dataclass(frozen=True)
class IntegrityReport:
    """`ledger`: the walk of the chain, signatures and checkpoints; `derived`: the first
    DERIVED_PROBLEMS_MAX disagreements of the derived tables with the chain (checked only when
    the ledger itself verifies)."""

    ledger: VerifyResult
    derived: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ledger.ok and not self.derived

    @property
    def first_problem(self) -> str:
        """One line naming the first bad entry, the contradicted checkpoint or the edited derived row."""
        if not self.ledger.ok:
            return f"entry {self.ledger.first_bad_sequence}: {self.ledger.reason}"
        return self.derived[0] if self.derived else ""


def trust_from_files(extra_checkpoints: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> Trust:
    """The public key file, the key this machine signs with (when it holds one) and the checkpoint
    log, plus `extra_checkpoints` (an auditor's). CheckpointInvalid for a malformed log line."""
    public_path = public_key_path(signing_key_path())
    root = read_public_key(public_path) if public_path.exists() else None
    current = load_signer(create=False).key_id if signing_key_path().exists() else None
    return Trust(root, current, [*checkpoint_log.read_checkpoint_log(), *extra_checkpoints])


def check_ledger(engine: Engine, extra_checkpoints: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> IntegrityReport:
    """The ledger against its signatures and every known checkpoint, then the derived tables."""
    try:
        trust = trust_from_files(extra_checkpoints)
    except SigningKeyProblem as error:
        raise LedgerCorrupt(str(error)) from None
    result = verify_ledger(engine, trust)
    return IntegrityReport(result, derived_table_problems(engine) if result.ok else [])


def issue_checkpoint(result: VerifyResult) -> dict:
    """Sign a checkpoint of a ledger `result` that verified, and append it to the log."""
    if not result.ok:
        raise LedgerCorrupt(f"no checkpoint of a ledger that does not verify: entry {result.first_bad_sequence}: "
                            f"{result.reason}")
    checkpoint = checkpoint_log.sign_checkpoint(load_signer(), result.entries_checked, result.head_hash,
                                                result.merkle_root, utc_now())
    checkpoint_log.append_to_log(checkpoint)
    return checkpoint


def checkpoint_ledger(engine: Engine) -> dict:
    """Verify everything (LedgerCorrupt naming the first problem when it fails), then sign and log a checkpoint."""
    report = check_ledger(engine)
    if not report.ok:
        raise LedgerCorrupt(f"no checkpoint of a ledger that does not verify: {report.first_problem}")
    return issue_checkpoint(report.ledger)


def latest_checkpoint() -> dict | None:
    logged = checkpoint_log.read_checkpoint_log()
    return logged[-1][1] if logged else None


def rotate_signing_key(engine: Engine) -> tuple[str, str]:
    """Stage a new key, announce it in a `key_rotation` entry (signed, as every write, by the current
    key), then make it current; returns (old key id, new key id). The ledger must verify first."""
    report = check_ledger(engine)
    if not report.ok:
        raise LedgerCorrupt(f"no key rotation on a ledger that does not verify: {report.first_problem}")
    old, new = load_signer(create=False), stage_next_key()
    memo = {"public_key": new.public_key.hex(), "key_id": new.key_id, "previous_key_id": old.key_id}
    post_transaction(engine, f"{ROTATION_KIND}:{new.key_id[:48]}", ROTATION_KIND,
                     [{"account": ROTATION_ACCOUNT, "amount_ucr": 0, "memo": memo}])
    activate_next_key()
    return old.key_id, new.key_id


def derived_table_problems(engine: Engine) -> list[str]:
    """Rows of `usage_records` and `workloads` that disagree with the workload records in the chain
    (the memo of transaction `workload:<id>`, which is the usage record as finalization wrote it)."""
    problems: list[str] = []
    for problem in _derived_problems(engine):
        problems.append(problem)
        if len(problems) == DERIVED_PROBLEMS_MAX:
            break
    return problems


def _derived_problems(engine: Engine) -> Iterator[str]:
    chained = ledger_entries.c.transaction_id == literal("workload:") + usage_records.c.workload_id
    usage_columns = [column for column in usage_records.columns if column.name != "record_json"]
    usage_query = (select(usage_records, workloads.c.state, ledger_entries.c.memo.label("chained_record"))
                   .join(workloads, workloads.c.workload_id == usage_records.c.workload_id, isouter=True)
                   .join(ledger_entries, chained, isouter=True).order_by(usage_records.c.workload_id))
    with engine.connect() as connection:
        for row in connection.execution_options(yield_per=PROOF_ROWS_PER_FETCH).execute(usage_query).mappings():
            name = f"usage_records[{row['workload_id']}]"
            if row["chained_record"] is None:
                if row["state"] != State.AGGREGATING.value:
                    yield f"{name}: no workload record in the ledger for this usage record (written behind its back)"
                continue
            if row["record_json"] != row["chained_record"]:
                yield f"{name}.record_json differs from the workload record in the ledger"
                continue
            record = json.loads(row["chained_record"])
            for column in usage_columns:
                if row[column.name] != record.get(column.name):
                    yield (f"{name}.{column.name} is {row[column.name]!r}, the workload record in the ledger says "
                           f"{record.get(column.name)!r}")
        workload_chained = ledger_entries.c.transaction_id == literal("workload:") + workloads.c.workload_id
        workload_query = (select(workloads.c.workload_id, workloads.c.state,
                                 *(workloads.c[name] for name in WORKLOAD_RECORD_FIELDS),
                                 ledger_entries.c.memo.label("chained_record"))
                          .join(ledger_entries, workload_chained, isouter=True).order_by(workloads.c.workload_id))
        for row in connection.execution_options(yield_per=PROOF_ROWS_PER_FETCH).execute(workload_query).mappings():
            name = f"workloads[{row['workload_id']}]"
            if row["chained_record"] is None:
                if row["state"] in NEEDS_RECORD_STATES:
                    yield f"{name}.state is {row['state']}, but the ledger holds no workload record for it"
                continue
            if row["state"] not in RECORDED_STATES:
                yield f"{name}.state is {row['state']}, but the ledger records the workload as finalized"
            record = json.loads(row["chained_record"])
            for name_of_field in WORKLOAD_RECORD_FIELDS:
                if row[name_of_field] != record.get(name_of_field):
                    yield (f"{name}.{name_of_field} is {row[name_of_field]!r}, the workload record in the ledger "
                           f"says {record.get(name_of_field)!r}")


def entry_hashes(engine: Engine, size: int) -> list[bytes]:
    """The leaf hashes of entries 1..size (LedgerCorrupt when the ledger is shorter)."""
    query = (select(ledger_entries.c.entry_hash).where(ledger_entries.c.sequence <= size)
             .order_by(ledger_entries.c.sequence))
    with engine.connect() as connection:
        leaves = [leaf_hash(bytes.fromhex(value)) for (value,) in
                  connection.execution_options(yield_per=PROOF_ROWS_PER_FETCH).execute(query)]
    if len(leaves) != size:
        raise LedgerCorrupt(f"the ledger has {len(leaves)} entries, the checkpoint {size}: run `forge-pool ledger verify`")
    return leaves


def _tree_matching(engine: Engine, checkpoint: Mapping[str, Any]) -> MerkleTree:
    tree = MerkleTree(entry_hashes(engine, checkpoint["size"]))
    if tree.root(None).hex() != checkpoint["merkle_root"]:
        raise LedgerCorrupt(f"the ledger's first {checkpoint['size']} entries do not give the checkpoint's root: "
                            "run `forge-pool ledger verify`")
    return tree


def inclusion_proofs(engine: Engine, sequences: Sequence[int], checkpoint: Mapping[str, Any]) -> list[dict]:
    """One inclusion proof per entry (by sequence number) against `checkpoint`: the entry as stored
    (every hashed field and entry_hash), its leaf index, the audit path and the checkpoint."""
    tree = _tree_matching(engine, checkpoint)
    query = select(ledger_entries).where(ledger_entries.c.sequence.in_(list(sequences)))
    with engine.connect() as connection:
        rows = {row["sequence"]: dict(row) for row in connection.execute(query).mappings()}
    proofs = []
    for sequence in sequences:
        if sequence not in rows or sequence > checkpoint["size"]:
            raise LookupError(f"entry {sequence} is not among the checkpoint's {checkpoint['size']} entries")
        entry = {name: rows[sequence][name] for name in (*HASHED_FIELDS, "entry_hash")}
        proofs.append({"format": INCLUSION_FORMAT, "entry": entry, "leaf_index": sequence - 1,
                       "tree_size": checkpoint["size"],
                       "audit_path": [node.hex() for node in tree.inclusion_proof(sequence - 1)],
                       "checkpoint": dict(checkpoint)})
    return proofs


def transaction_sequences(engine: Engine, transaction_id: str) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(ledger_entries.c.sequence)
                                       .where(ledger_entries.c.transaction_id == transaction_id)
                                       .order_by(ledger_entries.c.sequence)).scalars())


def consistency_proofs(engine: Engine, olds: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> list[dict]:
    """That the ledger of each checkpoint in `olds` is a prefix of the ledger of checkpoint `new` (one tree for all)."""
    for old in olds:
        if not 0 < old["size"] <= new["size"]:
            raise ValueError(f"the old checkpoint must have 1 to {new['size']} entries, it has {old['size']}")
    tree = _tree_matching(engine, new)
    return [{"format": CONSISTENCY_FORMAT, "old": dict(old), "new": dict(new),
             "proof": [node.hex() for node in tree.consistency_proof(old["size"])]} for old in olds]
