"""API keys: stored only as salted hashes; unknown, malformed and revoked keys get 401, a wrong scope 403."""

import pytest
from sqlalchemy import select

from forge_pipeline.api.keys import Kind, Unauthenticated, authenticate, create_key, list_keys
from forge_pipeline.cli import main
from forge_pipeline.storage.database import api_keys
from tests.api.conftest import bearer


def test_keys_are_stored_only_as_salted_hashes(world):
    """No column of any key row holds the secret; equal owners get different salts and hashes; the key authenticates."""
    first_id, first = create_key(world.engine, Kind.ORGANIZATION, "acme")
    second_id, second = create_key(world.engine, Kind.ORGANIZATION, "acme")
    with world.engine.connect() as connection:
        rows = {row.key_id: row for row in connection.execute(select(api_keys))}
    secret = first.split("_", 2)[2]
    assert all(secret not in str(value) for row in rows.values() for value in row)
    assert rows[first_id].salt != rows[second_id].salt and rows[first_id].secret_hash != rows[second_id].secret_hash
    principal = authenticate(world.engine, first)
    assert (principal.kind, principal.owner, principal.key_id) == (Kind.ORGANIZATION, "acme", first_id)
    with pytest.raises(Unauthenticated):
        authenticate(world.engine, first[:-1] + ("A" if first[-1] != "A" else "B"))  # one character of the secret


def test_unknown_malformed_missing_and_revoked_keys_get_401(world):
    """Each answer is the same problem document with WWW-Authenticate: Bearer, revealing nothing about the key."""
    valid = world.tenants["acme"].key
    unknown = valid[:4] + ("0" if valid[4] != "0" else "1") + valid[5:]
    cases = {"revoked": bearer(world.revoked_key), "unknown": bearer(unknown), "malformed": bearer("not-a-key"),
             "basic": {"Authorization": "Basic YWNtZTpzZWNyZXQ="}, "missing": {}}
    for name, headers in cases.items():
        response = world.client.get(f"/v1/workloads/{world.tenants['acme'].finalized}", headers=headers)
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
        assert "acme" not in response.text and world.tenants["acme"].finalized not in response.text.replace(
            f"/v1/workloads/{world.tenants['acme'].finalized}", "")


def test_a_key_without_the_scope_gets_403_on_every_endpoint_that_needs_it(world):
    """A read-only key may read but not submit, estimate, dispute or export; a provider key reads no workload;
    a customer key sees no payouts or Agents."""
    acme = world.tenants["acme"]
    read_only, provider = bearer(world.read_only_key), bearer(world.provider_key)
    document = {"request_id": "never-stored"}
    assert world.client.get(f"/v1/workloads/{acme.finalized}", headers=read_only).status_code == 200
    refused = [
        world.client.post("/v1/workloads", json=document, headers=read_only),
        world.client.post("/v1/estimates", json=document, headers=read_only),
        world.client.post(f"/v1/workloads/{acme.finalized}/dispute", json={"reason": "x"}, headers=read_only),
        world.client.get(f"/v1/exports/{world.cycle}", headers=read_only),
        world.client.get(f"/v1/workloads/{acme.finalized}", headers=provider),
        world.client.get("/v1/workloads", headers=provider),
        world.client.get(f"/v1/statements/{world.cycle}", headers=provider),
        world.client.get(f"/v1/payouts/{world.cycle}", headers=acme.headers),
        world.client.get("/v1/agents", headers=acme.headers),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    assert all(response.json()["title"] == "Forbidden" for response in refused)
    assert world.client.get(f"/v1/workloads/{acme.finalized}", headers=acme.headers).json()["state"] == "Finalized"


def test_keys_commands_create_list_and_revoke(world, capsys):
    """`keys create` prints the key once on stdout, `keys list` never shows a secret, `keys revoke` ends it
    (the next request is 401); a scope the kind cannot hold, an unknown key id and a bad owner id exit 2."""
    assert main(["keys", "create", "--org", "initech", "--scope", "read", "--scope", "export"]) == 0
    key = capsys.readouterr().out.strip()
    assert world.client.get("/v1/workloads", headers=bearer(key)).json() == {"workloads": [], "next_page_token": None}
    key_id = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and key.split("_", 2)[2] not in listing and "export read" in listing
    assert main(["keys", "revoke", key_id]) == 0
    assert world.client.get("/v1/workloads", headers=bearer(key)).status_code == 401
    assert [row["revoked_at"] is not None for row in list_keys(world.engine) if row["key_id"] == key_id] == [True]
    assert main(["keys", "create", "--provider", "northwind", "--scope", "submit"]) == 2
    assert main(["keys", "revoke", "0000000000000000"]) == 2
    assert main(["keys", "create", "--org", "acme\n"]) == 2  # an owner id is a whole identifier
    errors = capsys.readouterr().err
    assert "--scope: 'submit' is not a scope of a provider key (allowed: payouts)" in errors
    assert "key_id: no API key '0000000000000000'" in errors and "Traceback" not in errors
    assert "--org: must be 1 to 128 characters" in errors
