"""What the command line and the local pool both do for an operator: messages on stderr,
submitting request files (all or none) and printing a cycle's statements.

Below both `forge_pipeline.cli` and `forge_pipeline.deploy.local_pool`, so neither imports the other.
"""

import sys
from pathlib import Path

from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.intake.request import WorkloadRequest, parse_document, validate_request
from forge_pipeline.storage import records
from forge_pipeline.storage.database import open_engine


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_requests(paths: list[str]) -> list[WorkloadRequest]:
    """Validate every file before storing any, so one bad file stores nothing."""
    valid, problems = [], []
    for path in paths:
        try:
            text = Path(path).read_bytes()
        except OSError as error:
            problems.append(Problem(path, f"cannot read: {error.strerror}"))
            continue
        try:
            valid.append(validate_request(parse_document(text, path)))
        except RequestInvalid as error:
            problems += [problem if problem.path.startswith(path) else Problem(f"{path}: {problem.path}", problem.message)
                         for problem in error.problems]
    if problems:
        raise RequestInvalid(problems)
    return valid


def submit(paths: list[str]) -> list[str]:
    from forge_pipeline.assign.assignment import require_capable_pool
    from forge_pipeline.assign.pool import load_pool

    engine = open_engine()
    requests = read_requests(paths)
    pool = load_pool()
    for request in requests:
        require_capable_pool(pool, request.document)
    stored = records.store_requests(engine, requests)  # all or none
    for request, (workload_id, created) in zip(requests, stored):
        say(f"{'submitted' if created else 'already submitted'}: {request.document['request_id']} -> {workload_id}")
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
