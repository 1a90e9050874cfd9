"""Web Core API on loopback: submissions per second and their latency against an authenticated GET /healthz
on the same server, on the embedded SQLite default and on PostgreSQL, measured side by side in one run.

`forge-pool serve` runs as its own process (one uvicorn worker) in a fresh home; the load generator is a
bounded asyncio client in this process: `concurrency` keep-alive connections, each sending its share of
requests one after another (closed loop), each submission a new request id (a new workload).

    PYTHONPATH=. python -c "from benchmarks.api import bench_api; print(bench_api('sqlite', 500))"
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from forge_pipeline.storage.database import drop_postgres_database

POSTGRES_SERVER = os.environ.get("FORGE_BENCH_POSTGRES_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")
DOCUMENT = {
    "project": "risk", "workspace": "prod", "adapter": "sdk", "primitive": "probabilistic_simulation/portfolio_loss@1",
    "profile": "standard@1", "policy": {"shard_size": 200},
    "arguments": {"scenarios": 600, "bins": 6, "quantiles": ["0.95", "0.99"],
                  "obligors": [{"exposure": 500, "pd": "0.05"}, {"exposure": 300, "pd": "0.1"}]},
}


def bench_api(database: str = "sqlite", requests: int = 2_000, concurrency: int = 8) -> dict:
    """Submissions and health checks: requests/s, p50 and p99 in ms, and submit ÷ healthz ratios."""
    if database not in ("sqlite", "postgres"):
        raise ValueError(f"database must be sqlite or postgres, got {database!r}")
    with tempfile.TemporaryDirectory() as home:
        environment = {**os.environ, "FORGE_HOME": home, "FORGE_API_RATE_LIMIT": "1000000/second"}
        environment.pop("FORGE_DATABASE_URL", None)
        name = f"forge_bench_api_{uuid.uuid4().hex[:10]}"
        if database == "postgres":
            _create_postgres_database(name)
            environment["FORGE_DATABASE_URL"] = f"{POSTGRES_SERVER}/{name}"
        try:
            key = subprocess.run([sys.executable, "-m", "forge_pipeline.cli", "keys", "create", "--org", "bench"],
                                 env=environment, capture_output=True, text=True, check=True).stdout.strip()
            with _server(environment) as port:
                health = asyncio.run(_load(port, key, requests, concurrency, submit=False))
                submits = asyncio.run(_load(port, key, requests, concurrency, submit=True))
        finally:
            if database == "postgres":
                drop_postgres_database(POSTGRES_SERVER, name)
    return {"database": database, "requests": requests, "concurrency": concurrency, "submit": submits,
            "healthz": health, "throughput_ratio": round(submits["per_s"] / health["per_s"], 3),
            "p50_ratio": round(submits["p50_ms"] / health["p50_ms"], 3)}


def _create_postgres_database(name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


class _server:
    """`forge-pool serve` on a free loopback port, until the block ends."""

    def __init__(self, environment: dict):
        self.environment = environment

    def __enter__(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(self.port)],
                                        env=self.environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/openapi.json", timeout=2).read()
                return self.port
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"forge-pool serve did not start: {self.process.stderr.read().decode()}")
                time.sleep(0.2)

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)


async def _load(port: int, key: str, requests: int, concurrency: int, submit: bool) -> dict:
    """Closed-loop load over `concurrency` keep-alive connections; every answer must be 200/201."""
    latencies: list[float] = []
    run = uuid.uuid4().hex[:8]

    async def connection(worker: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in range(worker, requests, concurrency):
                if submit:
                    body = json.dumps({**DOCUMENT, "request_id": f"bench-{run}-{index}"}).encode()
                    head = (f"POST /v1/workloads HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                else:
                    body = b""
                    head = f"GET /healthz HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
                started = time.perf_counter()
                writer.write(head + body)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status not in (200, 201):
                    raise RuntimeError(f"{'submit' if submit else 'healthz'} answered {status}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(worker) for worker in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"per_s": round(requests / elapsed), "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, (99 * len(latencies)) // 100)], 2)}


async def _read_response(reader: asyncio.StreamReader) -> int:
    header = await reader.readuntil(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


if __name__ == "__main__":
    for name in ("sqlite", "postgres"):
        print(bench_api(name, int(sys.argv[1]) if len(sys.argv) > 1 else 2_000))
