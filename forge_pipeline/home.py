"""FORGE_HOME: the folder that holds the SQLite database, the Dagster instance, the artifact
store and the organizations' input areas. Standard library only (the kernels import it)."""

from __future__ import annotations

import os
from pathlib import Path


def forge_home() -> Path:
    return Path(os.environ.get("FORGE_HOME", ".forge")).resolve()
