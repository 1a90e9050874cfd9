"""`forge-pool run` honours SIGTERM: the workload it was running ends Failed with the reason, never stranded."""

import json
import os
import signal
import subprocess
import sys
import time

from forge_pipeline.cli import main
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import load_workload, usage_record_of
from tests.lifecycle.requests import request

WAIT_S = 120


def test_sigterm_during_run_fails_the_running_workload(forge_home, tmp_path, capsys):
    """SIGTERM while a long workload executes: the command exits 1 promptly and the workload is Failed (not
    Running), with a reason naming the signal; nothing is billed."""
    long = request(request_id="long", policy={"verification": "none", "shard_size": 100_000},
                   arguments={"scenarios": 4_000_000, "obligors": [{"exposure": 1, "pd": "0.5"}] * 200,
                              "quantiles": ["0.99"]})
    path = tmp_path / "long.json"
    path.write_text(json.dumps(long))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    environment = {**os.environ, "FORGE_EXECUTOR": "in_process"}
    process = subprocess.Popen([sys.executable, "-m", "forge_pipeline.cli", "run", workload_id], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while load_workload(open_engine(), workload_id)["state"] != "Running":
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # inside the Agent batches
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 1, stderr
    workload = load_workload(open_engine(), workload_id)
    assert workload["state"] == "Failed" and "stopped by SIGTERM" in workload["state_reason"], workload
    assert "Traceback" not in stderr
    assert usage_record_of(open_engine(), workload_id) is None
