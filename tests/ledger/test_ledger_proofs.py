"""Inclusion and consistency proofs of the ledger, checked by the standalone verifier with the public key alone;
the signing key's life (created on first use, mode 0600, rotation announced in the ledger)."""

import copy
import json
import os
import stat
import subprocess
import sys

import pytest
from ledger_helpers import settlement

from forge_pipeline.cli import main
from forge_pipeline.ledger import checkpoints as checkpoint_log
from forge_pipeline.ledger.checkpoints import CheckpointInvalid
from forge_pipeline.ledger.integrity import (check_ledger, checkpoint_ledger, consistency_proofs, entry_hashes,
                                             inclusion_proofs)
from forge_pipeline.ledger.ledger import ChainProblem, entries, post_transaction, post_transactions
from forge_pipeline.ledger.proof_check import verify_proof
from forge_pipeline.ledger.signing import (load_signer, public_key_path, public_key_pem, read_public_key,
                                           signing_key_path)
from forge_pipeline.merkle import MerkleTree, ProofInvalid

ENTRIES = 10_002  # 3,334 settlements of three entries


@pytest.fixture
def engine(database_url, monkeypatch):
    """The test database, also the one `forge-pool` commands open."""
    monkeypatch.setenv("FORGE_DATABASE_URL", database_url)
    from forge_pipeline.storage.database import open_engine
    return open_engine(database_url)


@pytest.fixture
def large_ledger(engine):
    transactions = [settlement(index) for index in range(ENTRIES // 3)]
    for start in range(0, len(transactions), 1_000):  # several signed writes
        post_transactions(engine, transactions[start:start + 1_000])
    return engine, checkpoint_ledger(engine), read_public_key(public_key_path())


def test_every_entry_of_a_10000_entry_ledger_has_a_valid_inclusion_proof(large_ledger):
    """An inclusion proof of each of the 10,002 entries verifies with only the public key and the checkpoint."""
    engine, checkpoint, public_key = large_ledger
    assert checkpoint["size"] == ENTRIES
    proofs = inclusion_proofs(engine, list(range(1, ENTRIES + 1)), checkpoint)
    for proof in proofs:
        assert verify_proof(json.loads(json.dumps(proof)), [public_key]).startswith(f"entry {proof['entry']['sequence']} ")


def test_every_older_size_has_a_valid_consistency_proof(large_ledger):
    """For every size m of the 10,002-entry ledger, a checkpoint of the first m entries is proven a prefix of the last."""
    engine, checkpoint, public_key = large_ledger
    leaves, signer = entry_hashes(engine, ENTRIES), load_signer()
    tree, rows = MerkleTree(leaves), entries(engine)
    olds = [checkpoint_log.sign_checkpoint(signer, size, rows[size - 1]["entry_hash"], tree.root(size).hex(),
                                           checkpoint["time"]) for size in range(1, ENTRIES + 1)]
    for proof in consistency_proofs(engine, olds, checkpoint):
        verify_proof(proof, [public_key])


def test_changed_entry_proof_or_checkpoint_is_refused(large_ledger):
    """A changed entry field, audit-path node, leaf index, checkpoint root or checkpoint signature fails."""
    engine, checkpoint, public_key = large_ledger
    proof = inclusion_proofs(engine, [4_321], checkpoint)[0]
    verify_proof(proof, [public_key])

    def changed(path, value):
        document = copy.deepcopy(proof)
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return document

    node = proof["audit_path"][3]
    for document, error in [
            (changed(["entry", "amount_ucr"], proof["entry"]["amount_ucr"] + 1), ProofInvalid),
            (changed(["entry", "account"], "provider:mallory"), ProofInvalid),
            (changed(["audit_path", 3], node[:-1] + ("0" if node[-1] != "0" else "1")), ProofInvalid),
            (changed(["leaf_index"], 4_321), ProofInvalid),
            (changed(["audit_path"], proof["audit_path"][:-1]), ProofInvalid),
            (changed(["checkpoint", "merkle_root"], "0" * 64), CheckpointInvalid),
            (changed(["checkpoint", "size"], ENTRIES - 1), CheckpointInvalid),
            (changed(["checkpoint", "signature"], "0" * 128), CheckpointInvalid)]:
        with pytest.raises(error):
            verify_proof(document, [public_key])
    other_key = bytes(32 * [7])
    with pytest.raises(CheckpointInvalid, match="not the ledger's"):
        verify_proof(proof, [other_key])
    old = checkpoint_log.sign_checkpoint(load_signer(), 10, entries(engine)[9]["entry_hash"], "1" * 64,
                                         checkpoint["time"])
    with pytest.raises(ProofInvalid):  # a checkpoint whose root is not the ledger's prefix
        verify_proof(consistency_proofs(engine, [old], checkpoint)[0], [public_key])


def test_standalone_verifier_runs_without_database_or_dagster(large_ledger, tmp_path, capsys):
    """`ledger prove` output checked by `python -m forge_pipeline.ledger.proof_check` in a fresh process that never
    imports SQLAlchemy or Dagster: exit 0 for the proofs, 1 for a changed one."""
    engine, checkpoint, _ = large_ledger
    capsys.readouterr()
    assert main(["ledger", "prove", "5000"]) == 0
    inclusion = tmp_path / "inclusion.json"
    inclusion.write_text(capsys.readouterr().out)
    assert main(["ledger", "prove", settlement(7).transaction_id]) == 0
    transaction = tmp_path / "transaction.json"
    transaction.write_text(capsys.readouterr().out)
    assert len(json.loads(transaction.read_text())) == 3
    older = tmp_path / "older.json"
    post_transaction(engine, **vars(settlement(ENTRIES)))
    assert main(["ledger", "checkpoint", "-o", str(older)]) == 0
    capsys.readouterr()
    assert main(["ledger", "prove", "--consistency", str(checkpoint["size"]), str(older)]) == 0
    consistency = tmp_path / "consistency.json"
    consistency.write_text(capsys.readouterr().out)
    tampered = tmp_path / "tampered.json"
    document = json.loads(inclusion.read_text())
    document["entry"]["amount_ucr"] -= 1
    tampered.write_text(json.dumps(document))
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FORGE_")}
    for path, code in ((inclusion, 0), (transaction, 0), (consistency, 0), (tampered, 1)):
        run = subprocess.run([sys.executable, "-X", "importtime", "-m", "forge_pipeline.ledger.proof_check",
                              "--public-key", str(public_key_path()), str(path)],
                             capture_output=True, text=True, env=environment, check=False)
        assert run.returncode == code, (run.stdout, run.stderr[-2000:])
        imported = {line.split("|")[-1].strip().split(".")[0] for line in run.stderr.splitlines() if "|" in line}
        assert not imported & {"sqlalchemy", "dagster", "polars", "psycopg2", "sqlite3"}, imported
        assert run.stdout.startswith("valid: " if code == 0 else "INVALID")


def test_prove_refuses_bad_input_with_exit_2(large_ledger, tmp_path, capsys):
    """An unknown entry, a missing checkpoint file and an old size beyond the new are refused with exit 2."""
    assert main(["ledger", "prove", "999999"]) == 2
    assert main(["ledger", "prove", "no-such-transaction"]) == 2
    assert main(["ledger", "prove", "3", "--checkpoint", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text('{"format": "forge-ledger-checkpoint/1", "size": -1}')
    assert main(["ledger", "verify", "--checkpoint", str(tmp_path / "bad.json")]) == 2
    assert "missing" in capsys.readouterr().err


def test_signing_key_is_created_on_first_use_with_mode_0600(engine, tmp_path, monkeypatch):
    """The first posting creates the key (0600) and its public key file; FORGE_SIGNING_KEY moves it elsewhere."""
    monkeypatch.setenv("FORGE_SIGNING_KEY", str(tmp_path / "secrets" / "hub.key"))
    assert not signing_key_path().exists()
    post_transaction(engine, **vars(settlement(0)))
    assert signing_key_path() == tmp_path / "secrets" / "hub.key"
    assert stat.S_IMODE(signing_key_path().stat().st_mode) == 0o600
    assert read_public_key(public_key_path()) == load_signer().public_key
    os.chmod(signing_key_path(), 0o644)
    assert main(["ledger", "verify"]) == 1  # a key readable by others is refused, not used


def test_rotated_key_is_trusted_through_its_announcement(engine, capsys):
    """`ledger rotate-key`: the new key signs; verify follows the announcement signed by the old key; a write signed
    by the old key after the rotation is not accepted; `ledger public-key` prints the new key."""
    post_transaction(engine, **vars(settlement(0)))
    checkpoint_ledger(engine)
    old = load_signer().key_id
    assert main(["ledger", "rotate-key"]) == 0
    new = load_signer().key_id
    capsys.readouterr()
    assert main(["ledger", "public-key"]) == 0
    assert capsys.readouterr().out.encode() == public_key_pem(load_signer().public_key)
    post_transaction(engine, **vars(settlement(1)))
    after = checkpoint_ledger(engine)
    assert old != new and after["key_id"] == new == load_signer().key_id
    assert check_ledger(engine).ok
    assert entries(engine, kind="key_rotation")[0]["memo"].find(new) > 0
    retired = signing_key_path().parent / "retired" / f"{old}.key"
    assert retired.exists()
    # The old key kept by someone who should have lost it cannot post unnoticed.
    current = signing_key_path().read_bytes()
    signing_key_path().write_bytes(retired.read_bytes())
    post_transaction(engine, **vars(settlement(2)))
    signing_key_path().write_bytes(current)
    result = check_ledger(engine).ledger
    assert (result.ok, result.problem) == (False, ChainProblem.BAD_SIGNATURE)


def test_settlement_signs_a_checkpoint_shown_in_metadata_statements_and_exports(forge_home, tmp_path, capsys):
    """Through Dagster: the settlement's materialization carries the signed checkpoint of the ledger after posting;
    the statement's Parquet metadata and every export line carry it; the auditor's copy verifies."""
    import polars as pl
    from dagster import DagsterInstance

    from forge_pipeline.definitions import defs
    from forge_pipeline.storage.database import open_engine
    from tests.money.workloads import finalize, today_cycle

    engine = open_engine()
    finalize(engine, request_id="checkpointed")
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("billing_cycle_settlement").execute_in_process(
        partition_key=today_cycle().key, instance=instance, raise_on_error=False)
    assert result.success
    materialization = next(event.materialization for event in result.get_asset_materialization_events()
                           if event.materialization.asset_key.path == ["settlement_postings"])
    checkpoint = materialization.metadata["ledger_checkpoint"].value
    assert checkpoint == checkpoint_log.read_checkpoint_log()[-1][1]
    assert checkpoint["size"] == len(entries(engine))
    statement = result.output_for_node("credit_statement")
    assert json.loads(pl.read_parquet_metadata(statement["path"])["forge_ledger_checkpoint"]) == checkpoint
    assert main(["export", "--cycle", today_cycle().key, "--format", "csv", "-o", str(tmp_path / "out.csv")]) == 0
    exported = json.loads(pl.read_csv(tmp_path / "out.csv")["ledger_checkpoint"][0])
    assert exported["size"] == checkpoint["size"] and exported["head_hash"] == checkpoint["head_hash"]
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(exported))
    assert main(["ledger", "verify", "--checkpoint", str(kept)]) == 0
