"""Inputs by reference: confined to the organization's input area, checked at intake, and a fault of
the input is the request's (never an Agent's)."""

import os

import polars
import pytest
from sqlalchemy import func, select

from forge_pipeline.assign.pool import load_pool
from forge_pipeline.assign.reliability import reliability_of
from forge_pipeline.intake.admission import admit_requests
from forge_pipeline.intake.inputs import input_area
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.lifecycle import (WorkloadFailed, admitted_request, collect_attempts, execute_batch,
                                      plan_workload, start_execution)
from forge_pipeline.storage.database import ledger_entries, open_engine, usage_records
from forge_pipeline.storage.records import load_workload
from tests.lifecycle.requests import request


def write_rows(path, keys=(1, 2, 1, 3), values=(10, 20, 30, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    polars.DataFrame({"key": list(keys), "value": list(values)}).write_parquet(path)


def grouped_sum(organization: str, source: dict, request_id: str = "sum-1") -> dict:
    return {**request(request_id=request_id, organization=organization, primitive="aggregation/grouped_sum@1",
                      policy={"shard_size": 2}), "arguments": {"parquet": source}}


def refusal(organization: str, source: dict) -> str:
    with pytest.raises(RequestInvalid) as refused:
        admit_requests([("r", grouped_sum(organization, source))], load_pool(), open_engine)
    return str(refused.value)


def test_a_request_reads_only_its_own_organizations_inputs(forge_home):
    """acme cannot name beta's input, the artifact store, the database or a link leading out; its own file is read."""
    write_rows(input_area("beta") / "rows.parquet")
    write_rows(input_area("acme") / "mine.parquet")
    statement = forge_home / "artifacts" / "settlement" / "2026-11-25" / "credit_statement.parquet"
    write_rows(statement)
    open_engine()  # the hub's database exists, as in service
    (input_area("acme") / "link.parquet").symlink_to(input_area("beta") / "rows.parquet")
    for name in ("../beta/rows.parquet", str(input_area("beta") / "rows.parquet"), str(statement),
                 str(forge_home / "forge.db"), "link.parquet", "/etc/passwd"):
        message = refusal("acme", {"path": name})
        assert "arguments.parquet.path:" in message and ("outside the organization's input area" in message
                                                         or "must name a file in the organization's" in message), name
    [(workload_id, created)] = admit_requests([("r", grouped_sum("acme", {"path": "mine.parquet"}))], load_pool(),
                                              open_engine)
    stored = load_workload(open_engine(), workload_id)["request"]["arguments"]["parquet"]["path"]
    assert created and stored == str((input_area("acme") / "mine.parquet").resolve())


def test_bad_parquet_inputs_are_refused_before_any_agent_runs(forge_home):
    """Equal key and value columns, and a file with a sound footer but corrupt data pages, are refused at intake."""
    area = input_area("acme")
    write_rows(area / "rows.parquet")
    assert "arguments.parquet.value_column: must differ from key_column" in refusal(
        "acme", {"path": "rows.parquet", "key_column": "key", "value_column": "key"})
    corrupt = area / "corrupt.parquet"
    polars.DataFrame({"key": list(range(50_000)), "value": list(range(50_000))}).write_parquet(
        corrupt, compression="zstd", statistics=False)
    data = bytearray(corrupt.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 4096] = os.urandom(4096)  # data pages; the footer at the end stays sound
    corrupt.write_bytes(bytes(data))
    assert polars.scan_parquet(corrupt).collect_schema().names() == ["key", "value"]
    assert "arguments.parquet.path: its data pages cannot be read" in refusal("acme", {"path": "corrupt.parquet"})
    assert not (forge_home / "forge.db").exists()


def test_an_input_fault_fails_the_workload_without_blaming_any_agent(forge_home):
    """A file changed after planning fails every Agent's attempt and the hub's alike: the workload ends Failed with
    the argument's path in its reason, no Agent's reliability changes, and nothing is billed."""
    path = input_area("acme") / "rows.parquet"
    write_rows(path)
    engine, pool = open_engine(), load_pool()
    [(workload_id, _)] = admit_requests([("r", grouped_sum("acme", {"path": "rows.parquet"}))], pool, open_engine)
    before = reliability_of(engine, [agent.agent_id for agent in pool.agents])
    planned = plan_workload(engine, admitted_request(engine, workload_id, "test-run"), pool, gpu_assignable=False)
    start_execution(engine, planned)
    write_rows(path, values=(11, 20, 30, 40))  # the input turns bad between admission and execution
    batches = [execute_batch(planned, pool, agent_id) for agent_id in planned["batches"]]
    with pytest.raises(WorkloadFailed, match="arguments.parquet.sha256"):
        collect_attempts(engine, planned, pool, batches, gpu_visible=False)
    workload = load_workload(engine, workload_id)
    assert workload["state"] == "Failed"
    assert "input is at fault" in workload["state_reason"] and "arguments.parquet.sha256" in workload["state_reason"]
    assert reliability_of(engine, [agent.agent_id for agent in pool.agents]) == before
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(usage_records)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(ledger_entries)).scalar_one() == 0
