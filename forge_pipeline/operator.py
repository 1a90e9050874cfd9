"""What the command line and the local pool both do for an operator: messages on stderr,
submitting request files (all or none) and printing a cycle's statements.

Below both `forge_pipeline.cli` and `forge_pipeline.deploy.local_pool`, so neither imports the other.
"""

import sys

from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.intake.limits import MAX_JSON_BYTES
from forge_pipeline.storage.database import open_engine


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_request_files(paths: list[str]) -> list[tuple[str, bytes]]:
    """Each file's bytes, at most one byte past the document limit (a larger file is refused by size
    without being read whole); every unreadable file is a problem, all named at once."""
    documents, problems = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                documents.append((path, handle.read(MAX_JSON_BYTES + 1)))
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
            problems.append(Problem(path, f"cannot read: {getattr(error, 'strerror', None) or error}"))
    if problems:
        raise RequestInvalid(problems)
    return documents


def submit(paths: list[str]) -> list[str]:
    """Admit the request files, all or none (`forge_pipeline.intake.admission`); the database is
    opened only once every file is valid, so a refused submit writes nothing."""
    from forge_pipeline.assign.pool import load_pool
    from forge_pipeline.intake.admission import admit_requests

    documents = read_request_files(paths)
    stored = admit_requests(documents, load_pool(), open_engine)
    for (path, _), (workload_id, created) in zip(documents, stored):
        say(f"{'submitted' if created else 'already submitted'}: {path} -> {workload_id}")
    return [workload_id for workload_id, _ in stored]


def print_statements(cycle_key: str) -> None:
    import polars as pl

    from forge_pipeline.settle import tables
    from forge_pipeline.settle.settlement import cycle_entries

    frame = cycle_entries(open_engine(), cycle_key)
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=50):
        print(f"credit statement, cycle {cycle_key}")
        print(tables.credit_statement(frame).collect())
        print(f"provider payouts, cycle {cycle_key}")
        print(tables.provider_payouts(frame).collect())
