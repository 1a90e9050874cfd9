"""A small world for the API tests: two customers (acme, globex) and one provider (northwind),
each customer with a workload finalized and settled in today's cycle and one still pending,
all submitted through the API itself, plus an operator key and a few odd keys."""

import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi.testclient import TestClient

from forge_pipeline.api.app import ApiSettings, create_app
from forge_pipeline.api.keys import Kind, create_key, revoke_key
from forge_pipeline.assign.pool import load_pool
from forge_pipeline.lifecycle import run_lifecycle_inline
from forge_pipeline.settle.settlement import settle_cycle
from forge_pipeline.storage.database import database_url, dispose_engines, forge_home, open_engine
from tests.lifecycle.requests import request
from tests.money.workloads import today_cycle

CUSTOMERS = ("acme", "globex")


@dataclass
class Tenant:
    name: str
    key: str
    finalized: str = ""
    pending: str = ""
    request_ids: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict:
        return bearer(self.key)


@dataclass
class World:
    engine: object
    app: object
    client: TestClient
    tenants: dict[str, Tenant]
    provider_key: str
    operator_key: str
    read_only_key: str
    revoked_key: str
    cycle: str


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def small_request(organization: str, request_id: str, **changes) -> dict:
    """A 600-scenario portfolio-loss request in 3 shards; `arguments` and `policy` changes are merged."""
    document = request(organization=organization, request_id=request_id, arguments={"scenarios": 600},
                       policy={"shard_size": 200})
    for key, value in changes.items():
        document[key] = {**document[key], **value} if key in ("arguments", "policy") else value
    return document


def build_world(settings: ApiSettings | None = None) -> World:
    engine = open_engine()
    app = create_app(settings or ApiSettings(rate_limit="100000/second"))
    client = TestClient(app, raise_server_exceptions=False)
    tenants = {}
    for name in CUSTOMERS:
        tenant = Tenant(name, create_key(engine, Kind.ORGANIZATION, name)[1])
        for role in ("finalized", "pending"):
            request_id = f"{name}-{role}-request"
            response = client.post("/v1/workloads", json=small_request(name, request_id), headers=tenant.headers)
            assert response.status_code == 201, response.text
            setattr(tenant, role, response.json()["workload_id"])
            tenant.request_ids.append(request_id)
        run_lifecycle_inline(engine, tenant.finalized, load_pool(), False, forge_home() / "artifacts")
        tenants[name] = tenant
    settle_cycle(engine, today_cycle())
    revoked_id, revoked = create_key(engine, Kind.ORGANIZATION, "acme")
    revoke_key(engine, revoked_id)
    return World(engine, app, client, tenants,
                 provider_key=create_key(engine, Kind.PROVIDER, "northwind")[1],
                 operator_key=create_key(engine, Kind.OPERATOR, "")[1],
                 read_only_key=create_key(engine, Kind.ORGANIZATION, "acme", ["read"])[1],
                 revoked_key=revoked, cycle=today_cycle().key)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A FORGE_HOME (SQLite) for one test module, its environment restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("api") / "forge"
        patch.setenv("FORGE_HOME", str(folder))
        patch.delenv("FORGE_DATABASE_URL", raising=False)
        patch.delenv("FORGE_POOL_FILE", raising=False)
        patch.setenv("FORGE_DEVICE", "cpu")
        yield folder
        dispose_engines()


@pytest.fixture(autouse=True)
def module_home_for_each_test(request, monkeypatch):
    """Tests of a module-scoped home run in it (the root conftest gives every test a home of its own)."""
    if "home" in request.fixturenames:
        monkeypatch.setenv("FORGE_HOME", str(request.getfixturevalue("home")))


@pytest.fixture(scope="module")
def world(home) -> World:
    return build_world()


class LiveServer:
    """The application on uvicorn, on a free loopback port, in a thread of this process."""

    def __init__(self, app):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture
def database_on(request, tmp_path, monkeypatch):
    """A fresh home on SQLite or on the real PostgreSQL server (param)."""
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "forge"))
    monkeypatch.delenv("FORGE_POOL_FILE", raising=False)
    monkeypatch.setenv("FORGE_DEVICE", "cpu")
    if request.param == "postgres":
        monkeypatch.setenv("FORGE_DATABASE_URL", request.getfixturevalue("postgres_server_url"))
    else:
        monkeypatch.delenv("FORGE_DATABASE_URL", raising=False)
    yield open_engine(database_url())
    dispose_engines()
