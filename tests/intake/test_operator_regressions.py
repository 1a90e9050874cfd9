"""Faults found by a new user and an attacker on the merged tree, as named regressions: each is exit 2 with the
setting or argument named, no traceback, nothing written."""

import datetime as dt
import json
import subprocess
import sys

import pytest

from forge_pipeline.cli import demo_requests, main
from forge_pipeline.intake.admission import read_request
from forge_pipeline.assign.pool import load_pool
from forge_pipeline.intake.problems import RequestInvalid


@pytest.mark.parametrize("body, kind", [([], "list"), (None, "null"), (123, "integer"), (b"", "null"),
                                        (b"[]", "list"), (b"null", "null"), (b"123", "integer")])
def test_a_document_that_is_not_a_mapping_is_refused_by_path_not_crashed_on(body, kind):
    """An API body of `[]`, `null`, a number or nothing was a 500 (AttributeError in the loader): now one problem."""
    with pytest.raises(RequestInvalid) as refused:
        read_request(body, load_pool(), "acme", source="(body)")
    assert [str(problem) for problem in refused.value.problems] == [f"(document): must be a mapping, got {kind}"]


@pytest.mark.parametrize("setting", [{"FORGE_EXECUTOR": "celery"}, {"FORGE_EXECUTOR": "celery_k8s"},
                                     {"FORGE_DATABASE_URL": "postgresql+nosuchdriver://nobody@127.0.0.1:1/x"}])
def test_settings_a_later_step_would_trip_on_are_refused_up_front(setting, forge_home, monkeypatch, capsys):
    """A Celery executor without its broker, or a database URL whose driver is not installed, is exit 2 at the first
    command (it was a traceback at `run` or at the first query)."""
    monkeypatch.delenv("FORGE_CELERY_BROKER", raising=False)
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {next(iter(setting))}: ") and "Traceback" not in error
    assert not (forge_home / "forge.db").exists()


def test_export_dispute_and_the_proof_checker_refuse_what_they_once_crashed_on(forge_home, tmp_path, capsys):
    """After the demo: `export -o FOLDER` wrote its temporary file beside the folder's parent and `--org ../x`
    exported an empty file; a dispute reason with a newline and terminal escapes reached operators' screens; 100,000
    nested arrays were a RecursionError traceback from the auditor's standalone proof checker."""
    assert main(["demo"]) == 0
    cycle = dt.datetime.now(dt.timezone.utc).date().isoformat()
    workload_id = json.loads(subprocess.run([sys.executable, "-m", "forge_pipeline.cli", "status", "--json"],
                                            capture_output=True, text=True, check=True).stdout)[0]["workload_id"]
    capsys.readouterr()
    assert main(["export", "--cycle", cycle, "--format", "csv", "-o", str(tmp_path)]) == 2
    assert "-o: " in capsys.readouterr().err and not list(tmp_path.parent.glob(".*.tmp"))
    assert main(["export", "--cycle", cycle, "--org", "../x", "--format", "csv", "-o", str(tmp_path / "x.csv")]) == 2
    assert "--org: " in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    for reason in ("ok\n\x1b[2J\x1b[31mPAID IN FULL", "", " ", "x" * 1001):
        assert main(["dispute", workload_id, "--reason", reason]) == 2
        assert "reason: must be 1 to 1000 printable characters" in capsys.readouterr().err
    assert main(["dispute", workload_id, "--reason", "a line item is wrong"]) == 0
    key = tmp_path / "public.pem"
    key.write_text(subprocess.run([sys.executable, "-m", "forge_pipeline.cli", "ledger", "public-key"],
                                  capture_output=True, text=True, check=True).stdout)
    proof = tmp_path / "deep.json"
    proof.write_text("[" * 100_000 + "]" * 100_000)
    checked = subprocess.run([sys.executable, "-m", "forge_pipeline.ledger.proof_check", "--public-key", str(key),
                              str(proof)], capture_output=True, text=True)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert checked.stderr.strip().splitlines() == ["error: malformed proof (nested too deeply)"]


def test_a_submit_refused_by_the_quota_on_a_fresh_home_creates_no_database(forge_home, monkeypatch, capsys):
    """The quota was checked inside the storing transaction, after the database file had been created."""
    monkeypatch.setenv("FORGE_WORK_UNIT_QUOTA", "1")
    demo = next(path for path in demo_requests()
                if path.name == "wayne-dedupe.yaml")
    assert main(["submit", str(demo)]) == 2
    assert "organization: 'wayne' has used 0 of its 1 work units" in capsys.readouterr().err
    assert not (forge_home / "forge.db").exists() and not list(forge_home.glob("forge.db*"))
