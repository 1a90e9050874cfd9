"""What a customer does through the API gives what the CLI gives: submission, status, estimate, evidence,
disputes, statements and exports; refusals are RFC 9457 problem documents with the CLI's messages."""

import io
import json
import socket

import polars as pl
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.api.app import ApiSettings, create_app
from forge_pipeline.assign.pool import load_pool
from forge_pipeline.cli import main
from forge_pipeline.lifecycle import run_lifecycle_inline
from forge_pipeline.storage import records
from forge_pipeline.storage.database import artifacts_root, workloads
from tests.api.conftest import LiveServer, small_request


def workload_count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(workloads)).scalar_one()


def test_submission_is_idempotent_by_request_id_or_idempotency_key(world):
    """201 then 200 for the same document (JSON or YAML), 409 for another document under the same id; the
    Idempotency-Key header stands for request_id, and a body naming a different one is refused."""
    acme = world.tenants["acme"]
    document = small_request("acme", "idempotent-1")
    first = world.client.post("/v1/workloads", json=document, headers=acme.headers)
    again = world.client.post("/v1/workloads", content=yaml.safe_dump(document), headers=acme.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["workload_id"] == again.json()["workload_id"] and first.json()["created"] is True
    assert first.headers["location"] == f"/v1/workloads/{first.json()['workload_id']}"
    different = world.client.post("/v1/workloads", json=small_request("acme", "idempotent-1", tags={"x": "y"}),
                                  headers=acme.headers)
    assert different.status_code == 409
    assert different.json()["problems"][0]["path"] == "request_id"
    without_id = {key: value for key, value in small_request("acme", "unused").items()
                  if key not in ("request_id", "organization")}
    by_header = world.client.post("/v1/workloads", json=without_id, headers={**acme.headers,
                                                                            "Idempotency-Key": "by-header-1"})
    assert by_header.status_code == 201 and by_header.json()["request_id"] == "by-header-1"
    stored = records.load_workload(world.engine, by_header.json()["workload_id"])
    assert (stored["organization"], stored["request_id"]) == ("acme", "by-header-1")
    clash = world.client.post("/v1/workloads", json=document, headers={**acme.headers, "Idempotency-Key": "other"})
    assert clash.status_code == 422 and [p["path"] for p in clash.json()["problems"]] == ["request_id"]


def test_a_refused_request_lists_every_problem_with_the_clis_messages(world, tmp_path, capsys):
    """The same bad document through `forge-pool submit` and the API: the same field paths and messages,
    nothing stored, no stack trace."""
    document = small_request("acme", "bad-1", arguments={"scenarios": -5, "bins": "six"}, policy={"sample_rate": 3},
                             tags={"t": 5})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    before = workload_count(world.engine)
    assert main(["submit", str(path)]) == 2
    cli = [line.removeprefix(f"error: {path}: ") for line in capsys.readouterr().err.splitlines()]
    response = world.client.post("/v1/workloads", json=document, headers=world.tenants["acme"].headers)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    api = [f"{problem['path']}: {problem['message']}" for problem in response.json()["problems"]]
    assert api == cli and len(api) >= 4
    assert response.json()["status"] == 422 and response.json()["instance"] == "/v1/workloads"
    malformed = world.client.post("/v1/workloads", content=b'{"request_id": ', headers=world.tenants["acme"].headers)
    assert malformed.status_code == 422 and malformed.json()["problems"][0]["path"] == "(body)"
    assert "malformed JSON at line 1" in malformed.json()["problems"][0]["message"]
    assert workload_count(world.engine) == before
    assert "Traceback" not in response.text + malformed.text


def test_status_evidence_and_export_are_what_the_cli_gives(world, tmp_path, capsys):
    """GET /v1/workloads/{id} is `status --json`; /evidence is the bundle's manifest.json; the CSV export is
    byte for byte `forge-pool export --org`."""
    acme = world.tenants["acme"]
    assert main(["status", acme.finalized, "--json"]) == 0
    assert world.client.get(f"/v1/workloads/{acme.finalized}", headers=acme.headers).json() == json.loads(
        capsys.readouterr().out)
    usage = records.usage_record_of(world.engine, acme.finalized)
    manifest = json.loads((evidence_directory(usage["evidence_path"], artifacts_root()) / "manifest.json").read_text())
    assert world.client.get(f"/v1/workloads/{acme.finalized}/evidence", headers=acme.headers).json() == manifest
    pending = world.client.get(f"/v1/workloads/{acme.pending}/evidence", headers=acme.headers)
    assert pending.status_code == 404 and "no evidence bundle" in pending.json()["detail"]
    output = tmp_path / "acme.csv"
    assert main(["export", "--cycle", world.cycle, "--org", "acme", "--format", "csv", "-o", str(output)]) == 0
    exported = world.client.get(f"/v1/exports/{world.cycle}?format=csv", headers=acme.headers)
    assert exported.headers["content-type"].startswith("text/csv")
    by_api, by_cli = (pl.read_csv(io.BytesIO(data)) for data in (exported.content, output.read_bytes()))
    # Each export embeds the checkpoint signed for it (its own time and signature); all else is byte for byte.
    assert by_api.drop("ledger_checkpoint").equals(by_cli.drop("ledger_checkpoint"))
    checkpoints = [json.loads(frame["ledger_checkpoint"][0]) for frame in (by_api, by_cli)]
    ledger_state = [{key: checkpoint[key] for key in ("size", "head_hash", "merkle_root", "key_id")}
                    for checkpoint in checkpoints]
    assert ledger_state[0] == ledger_state[1] and ledger_state[0]["size"] > 0
    bad = world.client.get("/v1/exports/2026-13-01?format=xlsx", headers=acme.headers)
    assert bad.status_code == 422 and {p["path"] for p in bad.json()["problems"]} == {"format"}


def test_an_estimate_is_the_planners_charge_and_stores_nothing(world):
    """Work, verification and aggregation match what finalization charged for the same request; a cap below the
    estimate says within_budget false; no workload is stored."""
    acme = world.tenants["acme"]
    before = workload_count(world.engine)
    estimate = world.client.post("/v1/estimates", json=small_request("acme", "acme-finalized-request"),
                                 headers=acme.headers).json()
    charged = records.usage_record_of(world.engine, acme.finalized)["charge"]
    for component in ("work_ucr", "verification_ucr", "aggregation_ucr", "rate_card_version"):
        assert estimate["charge"][component] == charged[component]
    assert estimate["workload_id"] == acme.finalized and estimate["within_budget"] is True
    capped = world.client.post("/v1/estimates", json=small_request("acme", "capped", policy={
        "shard_size": 200, "max_credits_ucr": estimate["charge_ucr"] - 1}), headers=acme.headers).json()
    assert capped["within_budget"] is False and capped["charge_ucr"] == estimate["charge_ucr"]
    assert workload_count(world.engine) == before


def test_dispute_holds_a_finalized_workload_and_refuses_other_states(world):
    """POST /dispute moves Finalized to Disputed with the reason; again is a no-op (as `forge-pool dispute`),
    and disputing a workload that is not Finalized is 409."""
    acme = world.tenants["acme"]
    response = world.client.post("/v1/workloads", json=small_request("acme", "to-dispute"), headers=acme.headers)
    workload_id = response.json()["workload_id"]
    run_lifecycle_inline(world.engine, workload_id, load_pool(), False, artifacts_root())
    disputed = world.client.post(f"/v1/workloads/{workload_id}/dispute", json={"reason": "wrong quantiles"},
                                 headers=acme.headers)
    assert disputed.status_code == 200
    assert (disputed.json()["state"], disputed.json()["state_reason"]) == ("Disputed", "disputed: wrong quantiles")
    again = world.client.post(f"/v1/workloads/{workload_id}/dispute", json={"reason": "x"}, headers=acme.headers)
    pending = world.client.post(f"/v1/workloads/{acme.pending}/dispute", json={"reason": "x"}, headers=acme.headers)
    assert (again.status_code, again.json()["state_reason"]) == (200, "disputed: wrong quantiles")
    assert pending.status_code == 409 and "Pending" in pending.json()["detail"]
    empty = world.client.post(f"/v1/workloads/{workload_id}/dispute", json={"reason": ""}, headers=acme.headers)
    assert empty.status_code == 422 and empty.json()["problems"][0]["path"] == "body.reason"


def test_an_internal_error_is_a_problem_document_without_a_trace(world):
    """A damaged evidence file on disk: 500, application/problem+json, a log reference, no Python internals."""
    acme = world.tenants["acme"]
    manifest = evidence_directory(records.usage_record_of(world.engine, acme.finalized)["evidence_path"],
                                  artifacts_root()) / "manifest.json"
    original = manifest.read_bytes()
    manifest.write_bytes(b"{damaged")
    try:
        response = world.client.get(f"/v1/workloads/{acme.finalized}/evidence", headers=acme.headers)
    finally:
        manifest.write_bytes(original)
    assert response.status_code == 500 and response.headers["content-type"] == "application/problem+json"
    assert "reference" in response.json()["detail"]
    assert not any(word in response.text for word in ("Traceback", "JSONDecodeError", ".py", "line 1"))


def test_body_size_limit_and_rate_limit(world):
    """Over the body limit: 413 whether announced by Content-Length or sent chunked; over the key's rate: 429
    with Retry-After, and another key is not slowed by it."""
    client = TestClient(create_app(ApiSettings(body_limit_bytes=2000, rate_limit="4/minute")))
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    announced = client.post("/v1/workloads", content=b" " * 2001, headers=acme.headers)
    chunked = client.post("/v1/workloads", content=iter([b" " * 1500, b" " * 1500]), headers=acme.headers)
    assert (announced.status_code, chunked.status_code) == (413, 413)
    assert announced.headers["content-type"] == chunked.headers["content-type"] == "application/problem+json"
    statuses = [client.get("/healthz", headers=acme.headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # the chunked upload counted: its key was checked before its body was read
    limited = client.get("/healthz", headers=acme.headers)
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert client.get("/healthz", headers=globex.headers).status_code == 200


def test_a_request_slower_than_the_time_limit_gets_503_over_a_real_socket(world):
    """A client announcing a body it never sends is answered 503 (a problem document) after the time limit."""
    with LiveServer(create_app(ApiSettings(timeout_s=0.5))) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"POST /v1/workloads HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                               b"Authorization: Bearer " + world.tenants["acme"].key.encode() + b"\r\n\r\n{")
            answer = connection.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 503") and "application/problem+json" in answer
    assert '"title":"Timed out"' in answer
