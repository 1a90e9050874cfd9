"""A user's mistake on the command line: one line naming what is wrong, exit 2, nothing written."""

import json

import pytest
import yaml

from forge_pipeline.cli import main
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import list_workload_ids
from tests.lifecycle.requests import request


def test_a_batch_reusing_a_request_id_with_other_content_stores_nothing(forge_home, tmp_path, capsys):
    """Two files with one request_id but different content: exit 2, no workload stored, no id printed."""
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(request()))
    second.write_text(json.dumps(request(arguments={"scenarios": 10})))
    assert main(["submit", str(first), str(second)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "already used for a different request" in captured.err
    assert list_workload_ids(open_engine()) == []


@pytest.mark.parametrize("argv, expected", [
    (["settle", "2025-01-01"], "cycle: 2025-01-01 is outside the billing cycles"),
    (["settle", "2999-01-01"], "cycle: 2999-01-01 is outside the billing cycles"),
    (["settle", "tomorrow"], "cycle: must be a date YYYY-MM-DD"),
])
def test_cycles_outside_the_billing_calendar_are_refused(argv, expected, forge_home, capsys):
    """A cycle before the first or after the open one is bad input, not a Dagster traceback."""
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_export_to_a_directory_is_refused_and_leaves_no_temporary_file(forge_home, tmp_path, capsys):
    """-o naming a directory: exit 2 with the reason; nothing half-written is left behind."""
    open_engine()
    assert main(["export", "--cycle", "2026-11-25", "--format", "csv", "-o", str(tmp_path)]) == 2
    assert "-o: " in (error := capsys.readouterr().err) and "is a folder" in error
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.tmp"))


@pytest.mark.parametrize("variable, value", [("FORGE_DATABASE_URL", "bogus://nowhere"), ("FORGE_DEVICE", "banana"),
                                             ("FORGE_BILLING_CYCLE", "weekly"), ("FORGE_GPU_BATCHES", "elsewhere")])
def test_bad_settings_are_refused_before_anything_runs(variable, value, forge_home, monkeypatch, capsys):
    """A bad environment setting is exit 2 naming the variable."""
    monkeypatch.setenv(variable, value)
    assert main(["status"]) == 2
    assert f"error: {variable}:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["ledger", "verify"], ["status"], ["replay", "wl_x"], ["agents"]])
def test_reading_commands_refuse_a_home_without_a_database(argv, forge_home, capsys):
    """A mistyped FORGE_HOME is reported, not answered from a freshly created empty database."""
    assert main(argv) == 2
    assert "no Forge database at" in capsys.readouterr().err
    assert not (forge_home / "forge.db").exists()


def test_dispute_of_a_workload_that_is_not_finalized_is_refused(forge_home, tmp_path, capsys):
    """Disputing a Pending workload is an illegal transition: exit 2 with the states named."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(request()))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    assert main(["dispute", workload_id, "--reason", "too early"]) == 2
    assert "Pending -> Disputed" in capsys.readouterr().err
