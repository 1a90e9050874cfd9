"""Tenancy is absolute: two customers and one provider, every endpoint and method, no response, header or
error of one tenant ever carries another customer's data; another's resources are 404 like absent ones."""

import io

import polars as pl
import pytest

from forge_pipeline.api.service import PageTokens
from forge_pipeline.status import workload_status
from tests.api.conftest import bearer, small_request

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def markers(world, name: str) -> set[str]:
    """What identifies a customer's data: its name, request ids, workload ids and digests."""
    tenant = world.tenants[name]
    status = workload_status(world.engine, tenant.finalized)
    return {name, *tenant.request_ids, tenant.finalized, tenant.pending, status["output_digest"],
            status["evidence_digest"], status["plan_digest"]}


def endpoints(world, victim: str) -> list[tuple[str, str, dict | None]]:
    """(method, path, JSON body) for every route, pointed at the victim's resources where a route names one."""
    target = world.tenants[victim]
    page_token = PageTokens(b"unknown to the server").issue(
        {"organization": victim, "state": None, "cycle": None}, ("2026-01-01T00:00:00.000000Z", target.finalized))
    cycle = world.cycle
    routes = [
        ("POST", "/v1/workloads", small_request(victim, "stolen-id")),
        ("POST", "/v1/estimates", small_request(victim, "stolen-id")),
        ("GET", "/v1/workloads", None),
        ("GET", f"/v1/workloads?state=Finalized&cycle={cycle}", None),
        ("GET", f"/v1/workloads?page_token={page_token}", None),
        ("GET", f"/v1/statements/{cycle}", None),
        ("GET", f"/v1/exports/{cycle}?format=csv", None),
        ("GET", f"/v1/exports/{cycle}?format=parquet", None),
        ("GET", f"/v1/payouts/{cycle}", None),
        ("GET", "/v1/agents", None),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
    ]
    for workload_id in (target.finalized, target.pending):
        routes += [("GET", f"/v1/workloads/{workload_id}", None),
                   ("GET", f"/v1/workloads/{workload_id}/evidence", None),
                   ("POST", f"/v1/workloads/{workload_id}/dispute", {"reason": "not mine"})]
    # Every other method on every path: answered 405 (or 404), never with data.
    paths = {path for _, path, _ in routes}
    routes += [(method, path, None) for path in sorted(paths) for method in METHODS
               if (method, path) not in {(m, p) for m, p, _ in routes}]
    return routes


def exposed_text(response, requested: str) -> str:
    """Everything a response tells its caller, less what the caller itself sent (a workload id in its path)."""
    text = response.content.decode("latin-1") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for part in requested.split("?")[0].split("/"):
        if part.startswith("wl_"):
            text = text.replace(part, "")
    return text


@pytest.mark.parametrize("attacker,victim", [("acme", "globex"), ("globex", "acme"), ("provider", "acme"),
                                             ("provider", "globex")])
def test_no_response_carries_another_customers_data(world, attacker, victim):
    """Every endpoint and method, as one tenant, aimed at another customer's resources: none of the victim's
    name, request ids, workload ids or digests appears in any body or header."""
    headers = bearer(world.provider_key) if attacker == "provider" else world.tenants[attacker].headers
    secrets = markers(world, victim)
    statuses = {}
    for method, path, body in endpoints(world, victim):
        response = world.client.request(method, path, json=body, headers=headers)
        assert response.status_code < 500, (method, path, response.text)
        leaked = {marker for marker in secrets if marker in exposed_text(response, path)}
        assert not leaked, (method, path, leaked, response.text[:300])
        statuses[(method, path)] = response.status_code
    if attacker != "provider":
        target = world.tenants[victim]
        for workload_id in (target.finalized, target.pending):
            assert statuses[("GET", f"/v1/workloads/{workload_id}")] == 404
            assert statuses[("GET", f"/v1/workloads/{workload_id}/evidence")] == 404
            assert statuses[("POST", f"/v1/workloads/{workload_id}/dispute")] == 404
        assert statuses[("POST", "/v1/workloads")] == 422  # a body naming another organization
        assert statuses[("GET", next(path for _, path, _ in endpoints(world, victim) if "page_token" in path))] == 404
    assert workload_status(world.engine, world.tenants[victim].finalized)["state"] == "Finalized"


def test_the_operator_sees_both_customers(world):
    """The positive control of the matrix: an operator's listing and statement do carry both customers' data,
    so the marker check above can fail."""
    operator = bearer(world.operator_key)
    listed = world.client.get("/v1/workloads", headers=operator).text
    statement = world.client.get(f"/v1/statements/{world.cycle}", headers=operator).json()
    for name in ("acme", "globex"):
        assert world.tenants[name].finalized in listed and world.tenants[name].pending in listed
    assert {line["organization"] for line in statement["lines"]} == {"acme", "globex"}


@pytest.mark.parametrize("suffix", ["", "/evidence"])
def test_another_organizations_workload_is_answered_exactly_as_an_absent_one(world, suffix):
    """Same status, same body (the id aside), same headers: existence is not revealed."""
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    absent = "wl_" + "0" * 20
    theirs = world.client.get(f"/v1/workloads/{globex.finalized}{suffix}", headers=acme.headers)
    nothing = world.client.get(f"/v1/workloads/{absent}{suffix}", headers=acme.headers)
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.text.replace(globex.finalized, "ID") == nothing.text.replace(absent, "ID")
    assert dict(theirs.headers) == dict(nothing.headers)  # the application sets no Date (uvicorn adds one)


def test_a_customer_sees_only_its_own_lines_in_statements_and_exports(world):
    """acme's statement, CSV and Parquet export hold acme's settled workload and nothing else; the provider's
    payouts hold northwind only."""
    acme = world.tenants["acme"]
    statement = world.client.get(f"/v1/statements/{world.cycle}", headers=acme.headers).json()
    assert [line["organization"] for line in statement["lines"]] == ["acme"]
    csv = pl.read_csv(io.BytesIO(
        world.client.get(f"/v1/exports/{world.cycle}?format=csv", headers=acme.headers).content))
    parquet = pl.read_parquet(io.BytesIO(
        world.client.get(f"/v1/exports/{world.cycle}?format=parquet", headers=acme.headers).content))
    assert csv["workload_id"].to_list() == parquet["workload_id"].to_list() == [acme.finalized]
    assert set(csv["organization"]) == {"acme"}
    payouts = world.client.get(f"/v1/payouts/{world.cycle}", headers=bearer(world.provider_key)).json()["payouts"]
    assert {line["provider_id"] for line in payouts} <= {"northwind"}
    agents = world.client.get("/v1/agents", headers=bearer(world.provider_key)).json()
    assert {agent["provider_id"] for agent in agents} == {"northwind"} and len(agents) == 2


def test_a_page_token_works_only_for_the_listing_that_issued_it(world):
    """Pages of one listing chain through every workload once; the same token under other filters, another
    organization's key, or altered by one character is 404."""
    operator = bearer(world.operator_key)
    first = world.client.get("/v1/workloads?limit=1", headers=operator).json()
    seen, token = [workload["workload_id"] for workload in first["workloads"]], first["next_page_token"]
    while token:
        page = world.client.get(f"/v1/workloads?limit=1&page_token={token}", headers=operator).json()
        seen += [workload["workload_id"] for workload in page["workloads"]]
        token = page["next_page_token"]
    expected = [world.tenants[name].finalized for name in ("acme", "globex")]
    expected += [world.tenants[name].pending for name in ("acme", "globex")]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    acme = world.tenants["acme"]
    token = world.client.get("/v1/workloads?limit=1", headers=acme.headers).json()["next_page_token"]
    assert world.client.get(f"/v1/workloads?limit=1&page_token={token}", headers=acme.headers).status_code == 200
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for path, headers in ((f"/v1/workloads?limit=1&page_token={token}", world.tenants["globex"].headers),
                          (f"/v1/workloads?limit=1&state=Pending&page_token={token}", acme.headers),
                          (f"/v1/workloads?limit=1&page_token={altered}", acme.headers),
                          ("/v1/workloads?page_token=garbage", acme.headers)):
        response = world.client.get(path, headers=headers)
        assert response.status_code == 404 and response.json()["title"] == "Not found", path
