"""Settings from the environment, checked up front: every command (`forge-pool ...`) calls
`check_settings` before it reads or writes anything, so a bad setting is one line and exit 2,
and a refused command leaves nothing behind (no database file, no folder).

Checked: FORGE_HOME (not empty, a folder or creatable as one, writable), FORGE_DATABASE_URL (a
URL whose driver is installed; SQLite on a file, not in memory, whose path is not a folder, in
a writable folder), FORGE_DEVICE, FORGE_EXECUTOR, FORGE_GPU_BATCHES, FORGE_BILLING_CYCLE,
FORGE_WORK_UNIT_QUOTA and FORGE_POOL_FILE (read and validated like any pool file). Whether a
server database answers is found when it is first opened (`DatabaseUnreachable`), still before
anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from forge_pipeline.intake.problems import Problem, RequestInvalid

EXECUTOR_NAMES = ("multiprocess", "in_process", "celery", "celery_k8s")
BATCH_SIZE_VARIABLE, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE = "FORGE_BATCH_SIZE", 200, 10_000


def batch_size() -> int:
    """FORGE_BATCH_SIZE: the most workloads one lifecycle run carries (default DEFAULT_BATCH_SIZE)."""
    text = os.environ.get(BATCH_SIZE_VARIABLE, "") or str(DEFAULT_BATCH_SIZE)
    if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH_SIZE:
        raise ValueError(f"must be a whole number from 1 to {MAX_BATCH_SIZE}, got {text!r}")
    return int(text)


def check_settings() -> None:
    """Raise RequestInvalid naming every bad setting (the variable is the problem's path)."""
    from sqlalchemy.engine import make_url

    from forge_pipeline.assign.assignment import gpu_batch_placement
    from forge_pipeline.assign.pool import load_pool
    from forge_pipeline.execute.backend import DEVICE_CHOICES
    from forge_pipeline.intake.quota import work_unit_quota
    from forge_pipeline.settle.settlement import billing_cadence
    from forge_pipeline.storage.database import database_url

    problems = []
    home = os.environ.get("FORGE_HOME")
    if home is not None and not home.strip():
        problems.append(Problem("FORGE_HOME", "is set but empty; unset it for ./.forge, or name a folder"))
    elif (reason := _unwritable_folder(Path(home or ".forge"))) is not None:
        problems.append(Problem("FORGE_HOME", reason))
    try:
        url = make_url(database_url())
        url.get_dialect().import_dbapi()  # a URL whose driver is not installed is refused here, not on first use
    except Exception as error:  # SQLAlchemy raises several types for a bad URL or a missing driver
        problems.append(Problem("FORGE_DATABASE_URL", f"not a usable database URL: {_first_line(error)}"))
    else:
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
                problems.append(Problem("FORGE_DATABASE_URL", "an in-memory SQLite database would lose every "
                                                              "workload when the command ends: name a file"))
            elif Path(url.database).is_dir():
                problems.append(Problem("FORGE_DATABASE_URL", f"{url.database} is a folder, not a database file"))
            elif not Path(url.database).exists() and \
                    (reason := _unwritable_folder(Path(url.database).resolve().parent)) is not None:
                problems.append(Problem("FORGE_DATABASE_URL", f"cannot create {url.database}: {reason}"))
    if os.environ.get("FORGE_DEVICE", "auto").lower() not in DEVICE_CHOICES:
        problems.append(Problem("FORGE_DEVICE", f"must be one of {', '.join(DEVICE_CHOICES)}"))
    executor = os.environ.get("FORGE_EXECUTOR", "in_process")
    if executor not in EXECUTOR_NAMES:
        problems.append(Problem("FORGE_EXECUTOR", f"must be one of {', '.join(EXECUTOR_NAMES)}, got {executor!r}"))
    elif executor.startswith("celery"):
        from forge_pipeline.deploy.settings import SettingInvalid, celery_config

        try:
            celery_config()
        except SettingInvalid as error:
            problems.append(Problem("FORGE_EXECUTOR", str(error)))
    for variable, check in (("FORGE_GPU_BATCHES", gpu_batch_placement), ("FORGE_BILLING_CYCLE", billing_cadence),
                            ("FORGE_WORK_UNIT_QUOTA", work_unit_quota), (BATCH_SIZE_VARIABLE, batch_size)):
        try:
            check()
        except ValueError as error:
            problems.append(Problem(variable, str(error)))
    if os.environ.get("FORGE_POOL_FILE"):
        try:
            load_pool()
        except RequestInvalid as error:
            problems += [Problem(f"FORGE_POOL_FILE: {problem.path}", problem.message) for problem in error.problems]
    if problems:
        raise RequestInvalid(problems)


def _unwritable_folder(folder: Path) -> str | None:
    """Why `folder` cannot be (made) a writable folder, or None. Creates nothing."""
    try:
        folder = folder.expanduser().absolute()
        existing = folder
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable"
    except (OSError, RuntimeError, ValueError) as error:  # a name too long, ~nosuchuser, a NUL byte
        return f"not a usable folder name ({_first_line(error)})"
    return None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
