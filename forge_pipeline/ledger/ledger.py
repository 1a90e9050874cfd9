"""The ledger: append-only, double-entry, tamper-evident postings (DESIGN §3.5).

Money: `amount_ucr` is a signed integer in micro-credits. Positive credits the account
(its balance grows), negative debits it. Charging a customer 10 µcr of which a provider
earns 7: `customer:acme/risk/prod` -10, `provider:northwind` +7, `platform:revenue` +3.
Every transaction's entries sum to exactly zero; that is checked before anything is
written and again by `verify_chain` after reading.

Idempotency: entry i (0-based) of transaction T carries the unique idempotency key
`T#i`. Posting a transaction id that is already in the ledger posts nothing and returns
False, so re-running any step never posts twice; posting it again with different entries
is refused (CONFLICTS_WITH_POSTED) rather than silently dropped.

Tamper evidence: entries are numbered 1, 2, 3... without gaps and hash-chained (see
chain.py). Writers are serialized (`storage.database.exclusive_transaction`), and each
write is one database transaction: lock, read the tail and the already-posted ids,
insert. A killed writer leaves either all of its transactions or none.

Signatures and the Merkle tree: each write also appends one row to `ledger_signatures`, the
hub's Ed25519 signature (signing.py; the key is outside the database) over the write's first
and last sequence and the head hash after it (which commits to every entry before it: one
signature per write, not per entry, keeps posting cheap). `verify_ledger` checks every entry is covered by a valid signature of the ledger's key
(or of a key a signed `key_rotation` entry announced), and that the ledger agrees with every
signed checkpoint it is given (checkpoints.py): the head hash and the RFC 6962 Merkle root
(recomputed over the entry hashes as it walks) at each checkpoint's size. So an entry written without the key is found, and so is a truncated or
re-chained ledger that any checkpoint saw before.

Nothing here updates or deletes a ledger row. A mistake is undone by a compensating
transaction (`post_correction`).
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Connection, Engine, Row, String, any_, exists, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger import checkpoints as checkpoint_log
from forge_pipeline.ledger.chain import GENESIS_HASH, HASHED_FIELDS, hash_values
from forge_pipeline.ledger.signing import Signer, key_id, load_signer, signature_valid
from forge_pipeline.merkle import EMPTY_ROOT, MerkleFrontier, leaf_hash
from forge_pipeline.storage.database import (LEDGER_LOCK_KEY, exclusive_transaction, ledger_entries,
                                             ledger_signatures, utc_now)

AMOUNT_UCR_MIN, AMOUNT_UCR_MAX = -(2**63) + 1, 2**63 - 1  # a signed BIGINT, symmetric so every entry negates
ENTRIES_PER_TRANSACTION_MAX = 10_000
ENTRIES_PER_BATCH_MAX = 1_000_000
WRITE_ATTEMPTS_MAX = 3
VERIFY_ROWS_PER_FETCH = 2_000

ATTRIBUTION_FIELDS = ("workload_id", "cycle", "organization", "project", "workspace", "provider_id")
ENTRY_FIELDS = frozenset({"account", "amount_ucr", "memo", *ATTRIBUTION_FIELDS})
FILTER_FIELDS = ("transaction_id", "kind", "account", *ATTRIBUTION_FIELDS)
# A prepared row is a tuple of the columns between sequence and the chain's recorded_at and
# prev_hash, in table order; chaining adds those three and entry_hash, giving the row as
# inserted and as `hash_values` takes it (HASHED_FIELDS are the table's columns in order).
_ROW_FIELDS = HASHED_FIELDS[1:-2]
_COLUMNS = (*HASHED_FIELDS, "entry_hash")
assert _ROW_FIELDS == ("transaction_id", "idempotency_key", "kind", "account", "amount_ucr", *ATTRIBUTION_FIELDS, "memo")
assert _COLUMNS == tuple(ledger_entries.columns.keys())
# What a re-post is compared on: everything but the chain and the time of posting.
_CONTENT_FIELDS = _ROW_FIELDS[1:]
_CYCLE = re.compile(r"\d{4}-\d{2}(-\d{2})?")
_NO_MEMO: Mapping[str, Any] = {}  # the memo of an entry that has none (never mutated)
_NO_MEMO_TEXT = canonical_json(_NO_MEMO).decode()


class Refusal(enum.Enum):
    NO_ENTRIES = "a transaction needs at least one entry"
    TOO_MANY_ENTRIES = (f"more than {ENTRIES_PER_TRANSACTION_MAX} entries in a transaction "
                        f"or {ENTRIES_PER_BATCH_MAX} in a batch")
    UNBALANCED = "entries do not sum to zero"
    AMOUNT_NOT_INTEGER = "amount_ucr must be an int (not a bool, float or NumPy scalar)"
    AMOUNT_OUT_OF_RANGE = "amount_ucr does not fit a signed 64-bit integer"
    BAD_FIELD = "a field is missing, unknown, of the wrong type or too long"
    DUPLICATE_TRANSACTION = "the same transaction id twice in one batch"
    CONFLICTS_WITH_POSTED = "this transaction id was already posted with different entries"


class TransactionRefused(ValueError):
    """Nothing of the batch was written."""

    def __init__(self, transaction_id: str | None, reason: Refusal, detail: str):
        subject = "batch" if transaction_id is None else f"transaction {transaction_id!r}"
        super().__init__(f"{subject} refused: {reason.value}: {detail}")
        self.transaction_id = transaction_id
        self.reason = reason
        self.detail = detail


class UnknownTransaction(LookupError):
    pass


class LedgerCorrupt(RuntimeError):
    """A stored entry breaks an invariant; `forge-pool ledger verify` says which and where."""


@dataclass(frozen=True)
class Transaction:
    """Entries: dicts with `account`, `amount_ucr` and optionally the attribution fields
    and `memo` (a dict, stored as canonical JSON)."""

    transaction_id: str
    kind: str  # workload_record | nonbillable | settlement | correction | ...
    entries: Sequence[Mapping[str, Any]]


class ChainProblem(enum.Enum):
    SEQUENCE_GAP = "sequence gap: an entry was deleted or inserted"
    PREV_HASH_MISMATCH = "prev_hash does not match the previous entry's hash: entries were moved, inserted or edited"
    HASH_MISMATCH = "entry_hash does not match the entry's content: the entry was edited"
    UNBALANCED = "transaction does not balance"
    NOT_SIGNED = "entries not covered by the hub's signature: written by someone without the key"
    BAD_SIGNATURE = "a write's signature does not verify: its entries, hashes or signature were changed"
    CHECKPOINT_CONTRADICTED = "the ledger contradicts a signed checkpoint: entries were removed or rewritten"
    KEY_MISMATCH = "the signing key does not match the ledger's public key"


ROTATION_KIND = "key_rotation"
ROTATION_ACCOUNT = "record:signing_key"
BATCH_SIGNATURE_FORMAT = "forge-ledger-write/1"


@dataclass(frozen=True)
class Trust:
    """What `verify_ledger` holds the ledger to: the ledger's first public key (raw bytes; None
    where there is none, acceptable only for an empty ledger), the key id of the private key
    this machine signs with (None where it holds none), and (source, checkpoint) pairs, their
    signatures checked here."""

    root_public_key: bytes | None
    current_key_id: str | None
    checkpoints: Sequence[tuple[str, Mapping[str, Any]]] = ()


@dataclass(frozen=True)
class VerifyResult:
    """`head_hash` is the hash of the last good entry and `merkle_root` the root over the
    entries checked (set when signatures were verified, else the empty tree's)."""

    ok: bool
    entries_checked: int
    head_hash: str
    first_bad_sequence: int | None = None
    problem: ChainProblem | None = None
    reason: str = ""
    merkle_root: str = EMPTY_ROOT.hex()


def post_transaction(engine: Engine, transaction_id: str, kind: str, entries: Sequence[Mapping[str, Any]]) -> bool:
    """Post one balanced transaction; False (nothing posted) when its id is already in the ledger."""
    return post_transactions(engine, [Transaction(transaction_id, kind, entries)])[0]


def post_transactions(engine: Engine, transactions: Sequence[Transaction]) -> list[bool]:
    """Post many transactions in one database transaction (one lock, one tail read, one
    bulk insert); returns, per transaction, whether it was posted now (False: it already was).

    Every transaction is checked before anything is written; one refusal refuses the batch.
    """
    entry_count = sum(len(transaction.entries) for transaction in transactions)
    if entry_count > ENTRIES_PER_BATCH_MAX:
        raise TransactionRefused(None, Refusal.TOO_MANY_ENTRIES, f"{entry_count} entries in one batch")
    prepared = [_rows_of(transaction) for transaction in transactions]
    seen: set[str] = set()
    for transaction in transactions:
        if transaction.transaction_id in seen:
            raise TransactionRefused(transaction.transaction_id, Refusal.DUPLICATE_TRANSACTION, "posted once per batch")
        seen.add(transaction.transaction_id)
    for _ in range(WRITE_ATTEMPTS_MAX - 1):
        try:
            return _append(engine, prepared)
        except IntegrityError:
            # Only a writer that bypasses the lock gets here: it posted one of these ids
            # between our read and our insert. Ours rolled back whole; reading again finds
            # its entries as already posted (and compares them).
            continue
    return _append(engine, prepared)


def post_correction(engine: Engine, original_transaction_id: str, reason: str) -> bool:
    """Post `correction:<original>`, negating every entry of the original with the same
    accounts and attribution; False when that correction is already posted."""
    if not isinstance(reason, str) or not reason:
        raise ValueError("a correction needs a reason")
    original = entries(engine, transaction_id=original_transaction_id)
    if not original:
        raise UnknownTransaction(f"no transaction {original_transaction_id!r} in the ledger")
    reversal = [{"account": row["account"], "amount_ucr": -row["amount_ucr"],
                 **{name: row[name] for name in ATTRIBUTION_FIELDS},
                 "memo": {"corrects": original_transaction_id, "reason": reason}} for row in original]
    return post_transaction(engine, f"correction:{original_transaction_id}", "correction", reversal)


def transaction_posted(engine: Engine, transaction_id: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(exists().where(ledger_entries.c.transaction_id == transaction_id))).scalar()


def entries(engine: Engine, **filters: str | None) -> list[dict]:
    """Entries in sequence order as stored (memo is its canonical JSON text), filtered by
    equality on any of FILTER_FIELDS (None matches NULL)."""
    unknown = set(filters) - set(FILTER_FIELDS)
    if unknown:
        raise TypeError(f"cannot filter ledger entries by {sorted(unknown)}; use {FILTER_FIELDS}")
    query = select(ledger_entries).order_by(ledger_entries.c.sequence)
    for name, value in filters.items():
        query = query.where(ledger_entries.c[name].is_(None) if value is None else ledger_entries.c[name] == value)
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    for row in rows:
        # After reading, as before writing: a float here would become a float on a statement.
        if type(row["amount_ucr"]) is not int:
            raise LedgerCorrupt(f"entry {row['sequence']} holds amount_ucr {row['amount_ucr']!r}, not an integer")
    return rows


def verify_chain(engine: Engine) -> VerifyResult:
    """The hash chain alone (`verify_ledger` without signatures or checkpoints)."""
    return verify_ledger(engine, None)


def verify_ledger(engine: Engine, trust: Trust | None) -> VerifyResult:
    """Walk the whole ledger in sequence order: contiguous sequence numbers from 1, each
    prev_hash equal to the previous entry_hash, each entry_hash recomputed, each
    transaction summing to zero. With `trust`, also: every entry covered by a signed write
    whose head hash and Merkle root match the entries, signed by the ledger's key (or one a
    signed rotation entry announced); every checkpoint signed by such a key and matched by
    the head hash and Merkle root at its size. Stops at the first problem; a checkpoint
    beyond the ledger's end, or writes signed beyond it, are found once the walk ends."""
    walk = _Walk(trust)
    expected_sequence, prev_hash, checked = 1, GENESIS_HASH, 0
    transaction_id, transaction_start, transaction_sum = None, 0, 0
    query = select(*(ledger_entries.c[name] for name in _COLUMNS)).order_by(ledger_entries.c.sequence)
    with engine.connect() as connection:
        broken = walk.start(connection) if trust is not None else None
        if broken is not None:
            return walk.failure(0, GENESIS_HASH, *broken)
        for row in connection.execution_options(yield_per=VERIFY_ROWS_PER_FETCH).execute(query):
            if row.transaction_id != transaction_id:
                if transaction_sum != 0:
                    return _unbalanced(checked, prev_hash, transaction_id, transaction_start, transaction_sum)
                transaction_id, transaction_start, transaction_sum = row.transaction_id, row.sequence, 0
            broken = _entry_problem(row, expected_sequence, prev_hash)
            if broken is not None:
                problem, detail = broken
                return VerifyResult(False, checked, prev_hash, min(row.sequence, expected_sequence), problem,
                                    f"{problem.value}: {detail}")
            transaction_sum += row.amount_ucr
            expected_sequence, prev_hash, checked = expected_sequence + 1, row.entry_hash, checked + 1
            if trust is not None:
                broken = walk.entry(row)
                if broken is not None:
                    return walk.failure(checked - 1, prev_hash, *broken)
    if transaction_sum != 0:
        return _unbalanced(checked, prev_hash, transaction_id, transaction_start, transaction_sum)
    if trust is not None:
        broken = walk.end(checked)
        if broken is not None:
            return walk.failure(checked, prev_hash, *broken)
    return VerifyResult(True, checked, prev_hash, merkle_root=walk.frontier.root().hex())


class _Walk:
    """The signature and checkpoint side of `verify_ledger`, fed one verified entry at a time."""

    def __init__(self, trust: Trust | None):
        self.trust, self.frontier = trust, MerkleFrontier()
        self.keys: dict[str, bytes] = {}
        self.active_key_id: str | None = None
        if trust is not None and trust.root_public_key is not None:
            self.active_key_id = key_id(trust.root_public_key)
            self.keys[self.active_key_id] = trust.root_public_key
        self.announced: bytes | None = None  # a key announced in the write being walked
        self.signatures: Iterator[Row] = iter(())  # the signed writes in order, streamed beside the entries
        self.next_signed: Row | None = None
        self.write_start = 1
        self.checkpoints = sorted(trust.checkpoints if trust else (), key=lambda item: item[1]["size"])
        self.next_checkpoint = 0

    def start(self, connection: Connection) -> tuple[ChainProblem, int, str] | None:
        """Open the signed writes; check the checkpoints of the empty ledger."""
        self.signatures = iter(connection.execute(select(ledger_signatures).order_by(ledger_signatures.c.last_sequence)
                                                  .execution_options(yield_per=VERIFY_ROWS_PER_FETCH)))
        self.next_signed = next(self.signatures, None)
        return self._checkpoints_at(0, GENESIS_HASH)

    def _checkpoints_at(self, size: int, head_hash: str) -> tuple[ChainProblem, int, str] | None:
        while self.next_checkpoint < len(self.checkpoints) and self.checkpoints[self.next_checkpoint][1]["size"] == size:
            broken = self._checkpoint(*self.checkpoints[self.next_checkpoint], head_hash)
            if broken is not None:
                return broken
            self.next_checkpoint += 1
        return None

    def entry(self, row: Row) -> tuple[ChainProblem, int, str] | None:
        sequence = row.sequence
        self.frontier.append(leaf_hash(bytes.fromhex(row.entry_hash)))
        if row.kind == ROTATION_KIND:
            try:
                self.announced = bytes.fromhex(json.loads(row.memo)["public_key"])
            except (ValueError, KeyError, TypeError):
                return ChainProblem.BAD_SIGNATURE, sequence, f"key rotation entry {sequence} names no public key"
        signed = self.next_signed
        if sequence == self.write_start and (signed is None or signed.first_sequence != sequence):
            return (ChainProblem.NOT_SIGNED, sequence, f"entries from {sequence} are in no signed write"
                    + ("" if signed is None else f" (the next one covers {signed.first_sequence}..{signed.last_sequence})"))
        if signed.last_sequence == sequence:
            broken = self._signed_write(signed, row)
            if broken is not None:
                return broken
            self.next_signed = next(self.signatures, None)
            self.write_start = sequence + 1
        return self._checkpoints_at(sequence, row.entry_hash)

    def end(self, size: int) -> tuple[ChainProblem, int, str] | None:
        if self.next_checkpoint < len(self.checkpoints):
            source, checkpoint = self.checkpoints[self.next_checkpoint]
            return (ChainProblem.CHECKPOINT_CONTRADICTED, size + 1,
                    f"{checkpoint_log.describe(checkpoint, source)} has {checkpoint['size']} entries, the ledger "
                    f"only {size}: entries {size + 1}..{checkpoint['size']} were removed")
        if self.next_signed is not None:
            signed = self.next_signed
            return (ChainProblem.NOT_SIGNED, size + 1, f"a signed write covers entries {signed.first_sequence}.."
                    f"{signed.last_sequence}, the ledger ends at entry {size}: entries were removed")
        if self.trust.current_key_id is not None and self.active_key_id != self.trust.current_key_id:
            return (ChainProblem.KEY_MISMATCH, size + 1,
                    f"this machine signs with key {self.trust.current_key_id[:16]}…, but the ledger's current key is "
                    f"{str(self.active_key_id)[:16]}… (from the public key file and the rotation entries): "
                    "the public key file or the signing key was replaced")
        return None

    def failure(self, checked: int, head_hash: str, problem: ChainProblem, sequence: int, detail: str) -> VerifyResult:
        return VerifyResult(False, checked, head_hash, sequence, problem, f"{problem.value}: {detail}",
                            self.frontier.root().hex())

    def _signed_write(self, signed: Row, row: Row) -> tuple[ChainProblem, int, str] | None:
        sequence, start = row.sequence, self.write_start
        if signed.head_hash != row.entry_hash:
            return (ChainProblem.BAD_SIGNATURE, start, f"the write of entries {start}..{sequence} was signed with head "
                                                       f"{signed.head_hash[:16]}…, the entries give {row.entry_hash[:16]}…")
        if self.active_key_id is None:
            return ChainProblem.KEY_MISMATCH, start, "there is no public key file to check the signatures with"
        public_key = self.keys.get(signed.key_id) if signed.key_id == self.active_key_id else None
        message = write_signature_message(start, sequence, signed.head_hash, signed.key_id, signed.signed_at)
        if public_key is None or not signature_valid(public_key, message, signed.signature):
            return (ChainProblem.BAD_SIGNATURE, start, f"the write of entries {start}..{sequence} is not signed by the "
                                                       f"ledger's key {str(self.active_key_id)[:16]}…")
        if self.announced is not None:  # the old key signed the announcement: the new one signs from here on
            self.active_key_id = key_id(self.announced)
            self.keys[self.active_key_id] = self.announced
            self.announced = None
        return None

    def _checkpoint(self, source: str, checkpoint: Mapping[str, Any], head_hash: str) -> tuple | None:
        size, root = checkpoint["size"], self.frontier.root().hex()
        try:
            checkpoint_log.check_signature(checkpoint, self.keys, source)
        except checkpoint_log.CheckpointInvalid as error:
            return ChainProblem.CHECKPOINT_CONTRADICTED, max(size, 1), str(error)
        if (checkpoint["head_hash"], checkpoint["merkle_root"]) != (head_hash, root):
            return (ChainProblem.CHECKPOINT_CONTRADICTED, max(size, 1),
                    f"{checkpoint_log.describe(checkpoint, source)} has head {checkpoint['head_hash'][:16]}… and root "
                    f"{checkpoint['merkle_root'][:16]}…, the first {size} entries give {head_hash[:16]}… and "
                    f"{root[:16]}…: entries up to {size} were rewritten")
        return None


def _entry_problem(row: Row, expected_sequence: int, prev_hash: str) -> tuple[ChainProblem, str] | None:
    """`row` holds _COLUMNS: the hashed fields in HASHED_FIELDS order, then entry_hash."""
    sequence = row.sequence
    if sequence != expected_sequence:
        return ChainProblem.SEQUENCE_GAP, f"expected entry {expected_sequence}, found entry {sequence}"
    if row.prev_hash != prev_hash:
        return ChainProblem.PREV_HASH_MISMATCH, f"entry {sequence} has prev_hash {row.prev_hash!r}, expected {prev_hash!r}"
    try:
        computed = hash_values(row[:-1])
    except (TypeError, ValueError) as error:  # a float or non-ASCII text written behind the ledger's back
        return ChainProblem.HASH_MISMATCH, f"entry {sequence} cannot be hashed: {error}"
    if row.entry_hash != computed:
        return ChainProblem.HASH_MISMATCH, f"entry {sequence} hashes to {computed}, stored {row.entry_hash!r}"
    return None


def _unbalanced(checked: int, head_hash: str, transaction_id: str, start: int, total: int) -> VerifyResult:
    return VerifyResult(False, checked, head_hash, start, ChainProblem.UNBALANCED,
                        f"{ChainProblem.UNBALANCED.value}: {transaction_id!r} (from entry {start}) sums to {total} µcr")


def _append(engine: Engine, prepared: list[tuple[tuple, ...]]) -> list[bool]:
    signer = load_signer()
    recorded_at = utc_now()
    transaction_ids = [rows[0][0] for rows in prepared]
    with exclusive_transaction(engine, LEDGER_LOCK_KEY) as connection:
        posted = _posted_content(connection, transaction_ids)
        tail = connection.execute(select(ledger_entries.c.sequence, ledger_entries.c.entry_hash)
                                  .order_by(ledger_entries.c.sequence.desc()).limit(1)).first()
        sequence, prev_hash = tail if tail is not None else (0, GENESIS_HASH)
        first_sequence = sequence + 1
        values: list = []  # the new entries' _COLUMNS, one entry after the other
        for transaction_id, rows in zip(transaction_ids, prepared, strict=True):
            if transaction_id in posted:
                if posted[transaction_id] != [row[1:] for row in rows]:
                    raise TransactionRefused(transaction_id, Refusal.CONFLICTS_WITH_POSTED,
                                             "post a correction and a new transaction instead")
                continue
            for row in rows:
                sequence += 1
                hashed = (sequence, *row, recorded_at, prev_hash)
                prev_hash = hash_values(hashed)
                values += hashed
                values.append(prev_hash)
        if values:
            _require_signed_tail(connection, first_sequence - 1)
            _insert(connection, values)
            connection.execute(insert(ledger_signatures).values(
                _signed_write(signer, first_sequence, sequence, prev_hash, recorded_at)))
    return [transaction_id not in posted for transaction_id in transaction_ids]


def _require_signed_tail(connection: Connection, size: int) -> None:
    """The hub signs only after its own signed writes: entries after the last signed write were
    written without the key (LedgerCorrupt, nothing posted). A ledger with entries but no signed
    write at all predates signing (revision 0003): its first signed write covers it whole."""
    last = connection.execute(select(func.max(ledger_signatures.c.last_sequence))).scalar()
    if last is not None and last != size:
        raise LedgerCorrupt(f"{ChainProblem.NOT_SIGNED.value}: the last signed write ends at entry {last}, the ledger "
                            f"at {size}; nothing posted (run `forge-pool ledger verify`)")


def write_signature_message(first_sequence: int, last_sequence: int, head_hash: str, signing_key_id: str,
                            signed_at: str) -> bytes:
    """What the hub signs for one write: canonical JSON naming the format and the write."""
    return canonical_json({"format": BATCH_SIGNATURE_FORMAT, "first_sequence": first_sequence,
                           "last_sequence": last_sequence, "head_hash": head_hash, "key_id": signing_key_id,
                           "signed_at": signed_at})


def _signed_write(signer: Signer, first_sequence: int, last_sequence: int, head_hash: str, signed_at: str) -> dict:
    message = write_signature_message(first_sequence, last_sequence, head_hash, signer.key_id, signed_at)
    return {"last_sequence": last_sequence, "first_sequence": first_sequence, "head_hash": head_hash,
            "key_id": signer.key_id, "signed_at": signed_at, "signature": signer.sign(message)}


def _insert(connection: Connection, values: list) -> None:
    """Insert the entries whose _COLUMNS `values` holds, one entry after the other."""
    statement, width = insert(ledger_entries), len(_COLUMNS)
    if connection.dialect.name == "sqlite":
        # SQLAlchemy's per-row parameter processing costs as much as SQLite's insert itself, and
        # so does the driver's per-row work in executemany: the values are plain ints and strs
        # already, so they go to the driver as multi-row VALUES, as many rows per statement as
        # the dialect's parameter limit allows (a fifth less time than one row per statement).
        compiled = statement.compile(dialect=connection.dialect)
        assert tuple(compiled.positiontup) == _COLUMNS, compiled.positiontup
        one_row = str(compiled).partition(" VALUES ")[2]
        per_statement = connection.dialect.insertmanyvalues_max_parameters // width * width
        for start in range(0, len(values), per_statement):
            chunk = tuple(values[start:start + per_statement])
            connection.exec_driver_sql(str(compiled) + f", {one_row}" * (len(chunk) // width - 1), chunk)
    else:
        # psycopg2: SQLAlchemy batches the rows into multi-row VALUES.
        connection.execute(statement, [dict(zip(_COLUMNS, values[start:start + width]))
                                       for start in range(0, len(values), width)])


def _posted_content(connection: Connection, transaction_ids: list[str]) -> dict[str, list[tuple]]:
    """For the ids already in the ledger: their entries' _CONTENT_FIELDS, in posting order.

    One query for the whole batch, the ids passed as one parameter (a JSON array for SQLite, an
    array for PostgreSQL): an IN list would need a parameter per id, in chunks under the limit."""
    if connection.dialect.name == "sqlite":
        each = func.json_each(json.dumps(transaction_ids)).table_valued("value")
        posted = ledger_entries.c.transaction_id.in_(select(each.c.value))
    else:
        posted = ledger_entries.c.transaction_id == any_(literal(transaction_ids, ARRAY(String)))
    content: dict[str, list[tuple]] = {}
    columns = [ledger_entries.c[name] for name in ("transaction_id", *_CONTENT_FIELDS)]
    for transaction_id, *row_content in connection.execute(select(*columns).where(posted)
                                                           .order_by(ledger_entries.c.sequence)):
        content.setdefault(transaction_id, []).append(tuple(row_content))
    return content


def _rows_of(transaction: Transaction) -> tuple[tuple, ...]:
    """The transaction's entries as prepared rows (_ROW_FIELDS); refuses anything malformed."""
    transaction_id, kind = transaction.transaction_id, transaction.kind

    def refuse(reason: Refusal, detail: str) -> TransactionRefused:
        return TransactionRefused(transaction_id, reason, detail)

    bad_text = _first_bad_text(_HEADER_TEXT_CHECKS, (transaction_id, kind))
    if bad_text is not None:
        raise refuse(Refusal.BAD_FIELD, _text_rule(*bad_text))
    if not transaction.entries:
        raise refuse(Refusal.NO_ENTRIES, "entries is empty")
    if len(transaction.entries) > ENTRIES_PER_TRANSACTION_MAX:
        raise refuse(Refusal.TOO_MANY_ENTRIES, f"{len(transaction.entries)} entries")
    rows, total = [], 0
    # Entries usually share one memo object: serialize it once. Every memo is referenced by
    # its entry until this returns, so no two of them share an id.
    memo_texts = {id(_NO_MEMO): _NO_MEMO_TEXT}
    for index, entry in enumerate(transaction.entries):
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise refuse(Refusal.BAD_FIELD, f"entries[{index}] is a {type(entry).__name__}, not a mapping")
        if not (entry.keys() <= ENTRY_FIELDS and "account" in entry and "amount_ucr" in entry):
            raise refuse(Refusal.BAD_FIELD, f"entries[{index}] has fields {sorted(entry)}: account and amount_ucr "
                                            f"are required, the others are {sorted(ENTRY_FIELDS)}")
        amount = entry["amount_ucr"]
        if type(amount) is not int:
            raise refuse(Refusal.AMOUNT_NOT_INTEGER,
                         f"entries[{index}].amount_ucr is {type(amount).__name__} {amount!r}")
        if not AMOUNT_UCR_MIN <= amount <= AMOUNT_UCR_MAX:
            raise refuse(Refusal.AMOUNT_OUT_OF_RANGE, f"entries[{index}].amount_ucr is {amount}")
        total += amount
        texts = (entry["account"], *map(entry.get, ATTRIBUTION_FIELDS))
        bad_text = _first_bad_text(_ENTRY_TEXT_CHECKS, texts)
        if bad_text is not None:
            raise refuse(Refusal.BAD_FIELD, f"entries[{index}].{_text_rule(*bad_text)}")
        cycle = texts[_CYCLE_TEXT]
        if cycle is not None and not _cycle_ok(cycle):
            raise refuse(Refusal.BAD_FIELD, f"entries[{index}].cycle {cycle!r} is not YYYY-MM-DD or YYYY-MM")
        memo = entry.get("memo", _NO_MEMO)
        memo_text = memo_texts.get(id(memo))
        if memo_text is None:
            if not isinstance(memo, Mapping):
                raise refuse(Refusal.BAD_FIELD, f"entries[{index}].memo is a {type(memo).__name__}, not a mapping")
            try:
                memo_text = memo_texts[id(memo)] = canonical_json(memo).decode()
            except TypeError as error:
                raise refuse(Refusal.BAD_FIELD, f"entries[{index}].memo: {error}") from None
        # transaction_id is at most 64 characters, so the idempotency key always fits its 255.
        rows.append((transaction_id, f"{transaction_id}#{index}", kind, texts[0], amount, *texts[1:], memo_text))
    if total != 0:
        raise refuse(Refusal.UNBALANCED, f"entries sum to {total} µcr")
    return tuple(rows)  # of plain values only: the garbage collector soon stops tracking it (a list it walks)


# Length limits read once from the table; all but account among the entry fields may be None.
_TEXT_LIMITS = {name: ledger_entries.c[name].type.length
                for name in ("transaction_id", "kind", "account", *ATTRIBUTION_FIELDS)}
_OPTIONAL_TEXT = frozenset(ATTRIBUTION_FIELDS)
_HEADER_TEXT_CHECKS, _ENTRY_TEXT_CHECKS = (
    tuple((name, _TEXT_LIMITS[name], name in _OPTIONAL_TEXT) for name in names)
    for names in (("transaction_id", "kind"), ("account", *ATTRIBUTION_FIELDS)))
_CYCLE_TEXT = 1 + ATTRIBUTION_FIELDS.index("cycle")  # in an entry's texts: account, then ATTRIBUTION_FIELDS


def _first_bad_text(checks: tuple[tuple[str, int, bool], ...], values: tuple) -> tuple[str, Any] | None:
    """The first (name, value) of `values` that is not a str of 1 to its limit characters
    (or None where optional); one call checks all the texts of an entry."""
    for (name, limit, optional), value in zip(checks, values):
        if type(value) is str:
            if 0 < len(value) <= limit:
                continue
        elif value is None and optional:
            continue
        return name, value
    return None


@functools.lru_cache(maxsize=1024)  # a batch names a cycle or two, thousands of times: match each once
def _cycle_ok(cycle: str) -> bool:
    return _CYCLE.fullmatch(cycle) is not None


def _text_rule(name: str, value: Any) -> str:
    optional = " or None" if name in _OPTIONAL_TEXT else ""
    return f"{name} must be a string of 1 to {_TEXT_LIMITS[name]} characters{optional}, got {value!r}"
