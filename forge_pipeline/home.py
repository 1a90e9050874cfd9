"""FORGE_HOME: the folder that holds the SQLite database, the Dagster instance, the artifact
store and the organizations' input areas. Standard library only (the kernels import it)."""

from __future__ import annotations

import os
from pathlib import Path


def forge_home() -> Path:
    return Path(os.environ.get("FORGE_HOME", ".forge")).resolve()


def dagster_home() -> Path:
    """$DAGSTER_HOME, set to FORGE_HOME/dagster when unset, created with a dagster.yaml (telemetry off)
    when it has none: the instance that `forge-pool run` writes to and `forge-pool ui` shows. Creating
    it is serialized by a file lock in that folder (concurrent first commands on a fresh home)."""
    from filelock import FileLock

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(forge_home() / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(home / ".instance.lock"):
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n")
    return home
