"""`forge-pool serve` as its users run it: a process on a loopback port that a key from `forge-pool keys create`
opens, storing what `forge-pool run` then picks up; bad settings exit 2 before serving."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from forge_pipeline.storage import records
from forge_pipeline.storage.database import open_engine
from tests.api.conftest import small_request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def forge_pool(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forge_pipeline.cli", *arguments], capture_output=True, text=True,
                          timeout=120)


def test_serve_answers_a_key_made_by_the_cli_and_stores_a_pending_workload(forge_home):
    """A submission over HTTP to `forge-pool serve` is a Pending workload in the same database, with the
    stored request `forge-pool submit` would store."""
    key = forge_pool("keys", "create", "--org", "acme").stdout.strip()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                health = urllib.request.urlopen(urllib.request.Request(
                    f"{url}/readyz", headers={"Authorization": f"Bearer {key}"}), timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
                time.sleep(0.2)
        assert json.loads(health.read()) == {"status": "ready"}
        submitted = urllib.request.urlopen(urllib.request.Request(
            f"{url}/v1/workloads", data=json.dumps(small_request("acme", "over-http")).encode(), method="POST",
            headers={"Authorization": f"Bearer {key}"}), timeout=30)
        assert submitted.status == 201
        workload_id = json.loads(submitted.read())["workload_id"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    workload = records.load_workload(open_engine(), workload_id)
    assert (workload["state"], workload["request"]["request_id"]) == ("Pending", "over-http")


def test_serve_refuses_bad_settings_with_exit_2(forge_home):
    """Each bad FORGE_API_* setting is named on stderr, exit 2, no trace, nothing served."""
    environment = {**os.environ, "FORGE_API_RATE_LIMIT": "lots", "FORGE_API_TIMEOUT_S": "-1"}
    result = subprocess.run([sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(free_port())],
                            capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 2
    assert "error: FORGE_API_TIMEOUT_S: must be a positive number, got '-1'" in result.stderr
    assert "error: FORGE_API_RATE_LIMIT: must read like 100/second or 6000/minute, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr
