"""`forge-pool ui`: the Dagster webserver, then the daemon, from this environment, on FORGE_HOME's instance.

The webserver starts first, alone, and the daemon (which the intake sensor and the
billing-cycle schedule need) once the webserver answers. `dagster dev` starts the same two
behind a code server that it loads first, so nothing answers until three Python processes
have imported Dagster one after another; on this 2-core machine the webserver alone answered
in about half the time (benchmarks/ui_startup.py measures both). Executables come from the
environment's own bin, not from whatever PATH finds. Nothing of Dagster is imported here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CODE_LOCATION = ["-m", "forge_pipeline.definitions"]
DAEMON_START_AFTER_S = 120  # start the daemon anyway if the webserver has not answered by then
STOP_WAIT_S = 30


def graphql_answers(host: str, port: int) -> bool:
    """The webserver at host:port answers GraphQL with the code location's asset nodes."""
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        reply = urllib.request.urlopen(urllib.request.Request(
            f"http://{address}:{port}/graphql", data=query, headers={"Content-Type": "application/json"}), timeout=10)
        return bool(json.load(reply)["data"]["assetNodes"])
    except (OSError, KeyError, TypeError, ValueError):
        return False


def serve_ui(host: str, port: int) -> int:
    """Run the webserver on host:port and the daemon until either exits or this process is stopped
    (Ctrl-C or SIGTERM); both are stopped together. Returns the webserver's exit status."""
    bin_folder = Path(sys.executable).parent
    signal.signal(signal.SIGTERM, _interrupt)
    webserver = subprocess.Popen([str(bin_folder / "dagster-webserver"), *CODE_LOCATION, "-h", host, "-p", str(port)])
    daemon = None
    try:
        started = time.monotonic()
        while webserver.poll() is None and not graphql_answers(host, port) \
                and time.monotonic() - started < DAEMON_START_AFTER_S:
            time.sleep(0.5)
        if webserver.poll() is None:
            daemon = subprocess.Popen([str(bin_folder / "dagster-daemon"), "run", *CODE_LOCATION])
        return webserver.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (daemon, webserver):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (daemon, webserver):
            if process is not None:
                try:
                    process.wait(timeout=STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    process.kill()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
