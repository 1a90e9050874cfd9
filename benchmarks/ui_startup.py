"""Benchmark (not a test): seconds from `forge-pool ui` to a UI that answers, beside `dagster dev`.

`bench_ui_startup(repeats)` starts, on a fresh temporary home each time, `forge-pool ui`
(webserver first, daemon once it answers) and then `dagster dev -m forge_pipeline.definitions`
(code server, then webserver and daemon), alternately, and times each until the webserver's
GraphQL API lists the lifecycle assets. Run it with `python -m benchmarks.ui_startup [REPEATS]`.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forge_pipeline.orchestration.ui import graphql_answers

BIN = Path(sys.executable).parent
TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_to_answer(command: list[str]) -> float:
    """Start `command` (PORT replaced) on a fresh home; seconds until it answers; then stop it."""
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        environment = {**os.environ, "FORGE_HOME": home, "DAGSTER_HOME": f"{home}/dagster"}
        os.makedirs(f"{home}/dagster")
        Path(home, "dagster", "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        started = time.monotonic()
        process = subprocess.Popen([part.replace("PORT", str(port)) for part in command], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while not graphql_answers("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() - started > TIMEOUT_S:
                    raise RuntimeError(f"{' '.join(command)} exited or did not answer within {TIMEOUT_S} s")
                time.sleep(0.2)
            return time.monotonic() - started
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def bench_ui_startup(repeats: int = 3) -> dict:
    """Median seconds to a UI that answers: `forge-pool ui`, plain `dagster dev`, and their ratio."""
    commands = {"forge_pool_ui": [str(BIN / "forge-pool"), "ui", "--port", "PORT"],
                "dagster_dev": [str(BIN / "dagster"), "dev", "-m", "forge_pipeline.definitions", "-p", "PORT"]}
    seconds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            seconds[name].append(seconds_to_answer(command))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {**{f"{name}_s": value for name, value in medians.items()},
            "ratio": medians["forge_pool_ui"] / medians["dagster_dev"], "repeats": repeats}


if __name__ == "__main__":
    measured = bench_ui_startup(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(f"forge-pool ui {measured['forge_pool_ui_s']:.1f} s, dagster dev {measured['dagster_dev_s']:.1f} s to a "
          f"UI that answers (median of {measured['repeats']}), ratio {measured['ratio']:.2f}")
