"""Admission: one entry point for the CLI, the launchpad job and the HTTP API; all or none, every problem at once."""

import json

import pytest
from dagster import DagsterInstance
from sqlalchemy import func, select

from forge_pipeline.assign.pool import load_pool
from forge_pipeline.cli import main
from forge_pipeline.intake.admission import RequestIdConflict, admit_requests
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.orchestration.intake import submit_request
from forge_pipeline.orchestration.resources import AgentPoolResource, ForgeDatabaseResource
from forge_pipeline.storage.database import open_engine, workloads
from tests.lifecycle.requests import request


def count_workloads() -> int:
    with open_engine().connect() as connection:
        return connection.execute(select(func.count()).select_from(workloads)).scalar_one()


def test_admission_is_idempotent_and_types_a_conflicting_resubmission(forge_home):
    """The same document again is (id, False); another document under the same request_id raises RequestIdConflict."""
    [(workload_id, created)] = admit_requests([("a", request())], load_pool(), open_engine)
    assert created
    assert admit_requests([("b", json.dumps(request()))], load_pool(), open_engine) == [(workload_id, False)]
    with pytest.raises(RequestIdConflict) as conflict:
        admit_requests([("ok", request(request_id="t-002")), ("c", request(arguments={"scenarios": 10}))],
                       load_pool(), open_engine)
    assert conflict.value.indexes == [1] and conflict.value.problems[0].path == "c: request_id"
    assert count_workloads() == 1  # t-002, valid, was not stored either: all or none


def test_the_callers_organization_must_be_the_documents(forge_home):
    """An API key's organization that differs from the document's is refused at `organization`, nothing stored."""
    with pytest.raises(RequestInvalid) as refused:
        admit_requests([("body", request(organization="beta"))], load_pool(), open_engine, organization="acme")
    assert [problem.path for problem in refused.value.problems] == ["body: organization"]
    assert admit_requests([("body", request())], load_pool(), open_engine, organization="acme")[0][1]


def test_every_problem_of_every_document_at_once_and_no_database(forge_home):
    """Two bad documents: every problem of both, each prefixed by its source; the database is never opened."""
    opened = []
    with pytest.raises(RequestInvalid) as refused:
        admit_requests([("a", request(arguments={"bins": 0})), ("b", "request_id: [x"),
                        ("c", request(tags={"team": "x\ny"}, policy={"replicas": 3}))],
                       load_pool(), lambda: opened.append(1) or open_engine())
    paths = [problem.path for problem in refused.value.problems]
    assert paths == ["a: arguments.bins", "b", "c: policy.replicas", "c: tags.team"]
    assert opened == [] and not (forge_home / "forge.db").exists()


def test_work_unit_quota_per_organization_and_cycle(forge_home, monkeypatch):
    """With FORGE_WORK_UNIT_QUOTA, an organization's requests in a cycle are admitted up to the quota, then refused."""
    units = 2000 * 3  # scenarios x obligors of the test request
    monkeypatch.setenv("FORGE_WORK_UNIT_QUOTA", str(2 * units))
    admit_requests([("a", request(request_id="q-1")), ("b", request(request_id="q-2"))], load_pool(), open_engine)
    admit_requests([("c", request(request_id="q-3", organization="beta"))], load_pool(), open_engine)
    with pytest.raises(RequestInvalid, match=f"'acme' has used {2 * units} of its {2 * units} work units"):
        admit_requests([("d", request(request_id="q-4"))], load_pool(), open_engine)
    assert admit_requests([("a", request(request_id="q-1"))], load_pool(), open_engine)[0][1] is False
    assert count_workloads() == 3


def test_launchpad_job_fails_with_the_problem_list(forge_home):
    """The `submit_request` job refuses a bad request with every problem as its failure message, storing nothing;
    a good one is admitted through the same entry point."""
    resources = {"database": ForgeDatabaseResource(), "agent_pool": AgentPoolResource()}
    bad = json.dumps(request(organization="acme\n", arguments={"bins": 0}))
    result = submit_request.execute_in_process(
        run_config={"ops": {"submit_workload_request": {"config": {"document": bad}}}},
        resources=resources, instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert message.splitlines() == ["request refused:",
                                    "organization: must be 1 to 128 characters: a letter or digit, "
                                    "then letters, digits and _ . : - (ASCII), got 'acme\\n'",
                                    "arguments.bins: must be >= 1, got 0"]
    assert not (forge_home / "forge.db").exists()
    good = submit_request.execute_in_process(
        run_config={"ops": {"submit_workload_request": {"config": {"document": json.dumps(request())}}}},
        resources=resources, instance=DagsterInstance.ephemeral())
    assert good.output_for_node("submit_workload_request").startswith("wl_") and count_workloads() == 1


@pytest.mark.parametrize("variable, value, expected", [
    ("FORGE_EXECUTOR", "bogus", "FORGE_EXECUTOR: must be one of"),
    ("FORGE_DATABASE_URL", "postgresql+nosuchdriver://x@127.0.0.1/db", "FORGE_DATABASE_URL: not a usable database URL"),
    ("FORGE_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere", "FORGE_DATABASE_URL: cannot open"),
    ("FORGE_WORK_UNIT_QUOTA", "lots", "FORGE_WORK_UNIT_QUOTA: must be a positive integer"),
    ("FORGE_POOL_FILE", "/nonexistent/pool.yaml", "FORGE_POOL_FILE: /nonexistent/pool.yaml: cannot read pool file"),
])
def test_bad_settings_refuse_submit_at_once(variable, value, expected, forge_home, tmp_path, monkeypatch, capsys):
    """Every command, submit included, checks its settings first: one line, exit 2, nothing written."""
    monkeypatch.setenv(variable, value)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(request()))
    assert main(["submit", str(path)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and "Traceback" not in captured.err and captured.out == ""
    assert not (forge_home / "forge.db").exists()


def test_unusable_homes_and_database_paths_are_refused(forge_home, tmp_path, monkeypatch, capsys):
    """A FORGE_HOME under a file, and a database path that is a folder, are one line each and exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FORGE_HOME", str(blocker / "home"))
    assert main(["status"]) == 2
    assert f"FORGE_HOME: {blocker} is not a folder" in capsys.readouterr().err
    monkeypatch.setenv("FORGE_HOME", str(forge_home))
    monkeypatch.setenv("FORGE_DATABASE_URL", f"sqlite:///{tmp_path}")
    assert main(["status"]) == 2
    assert "is a folder, not a database file" in capsys.readouterr().err


def test_executor_names_match_the_definitions():
    """The settings check knows exactly the executors definitions.py can build."""
    from forge_pipeline.definitions import EXECUTORS
    from forge_pipeline.settings import EXECUTOR_NAMES

    assert set(EXECUTOR_NAMES) == {*EXECUTORS, "celery", "celery_k8s"}
