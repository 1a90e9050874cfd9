"""Admission: the one way request documents become Pending workloads (`forge-pool submit`, the
`submit_request` launchpad job and the HTTP API all call `admit_requests`).

Every document is parsed under the intake limits, validated into its canonical form, checked
against the organization it is submitted for and against the Agent pool; only when all of them
pass is the database opened and the batch stored, all or none (`records.store_requests`), within
the organization's work-unit quota when one is set (`forge_pipeline.intake.quota`). A
refusal names every problem of every document at once (`RequestInvalid`), and writes nothing:
not a row, not a database file. Resubmitting a request is idempotent: the same canonical document
under the same (organization, request_id) is the same workload (`created` False); a different
document under that id is refused with `RequestIdConflict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from forge_pipeline.assign.assignment import require_capable_pool
from forge_pipeline.assign.pool import Pool
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.problems import Problem, RequestIdConflict, RequestInvalid
from forge_pipeline.intake.quota import quota_problems, work_unit_quota
from forge_pipeline.intake.request import WorkloadRequest, validate_request
from forge_pipeline.storage import records
from forge_pipeline.storage.database import database_is_new

__all__ = ["RequestIdConflict", "admit_requests", "read_request"]


def read_request(document: Any, pool: Pool, organization: str | None = None,
                 source: str = "(document)") -> WorkloadRequest:
    """One document (JSON or YAML text, or a value already parsed: anything but a mapping is refused) validated for admission:
    limits, fields, the caller's organization (when given, `organization` must equal the
    document's) and a pool able to run it. Raises RequestInvalid naming every problem; stores nothing."""
    parsed = load_document(document, source) if isinstance(document, (str, bytes)) else document
    request = validate_request(parsed)
    if organization is not None and request.document["organization"] != organization:
        raise RequestInvalid([Problem("organization", "must be the organization the request is submitted for")])
    require_capable_pool(pool, request.document)
    return request


def admit_requests(documents: Sequence[tuple[str, str | bytes | dict]], pool: Pool,
                   open_database: Callable[[], Engine], organization: str | None = None) -> list[tuple[str, bool]]:
    """Admit `(source, document)` pairs as Pending workloads, all or none.

    `source` names the document in problems (a file name, `config.document`, `body`).
    Returns (workload_id, created) per document, in order; `created` is False when the same
    canonical document was admitted before. `open_database` is called only once every document
    is valid, so a refused batch creates no database. Raises RequestInvalid (every problem, each
    path prefixed by its source) or its subclass RequestIdConflict (a request_id already used for
    a different document, stored or earlier in the batch).
    """
    requests: list[WorkloadRequest] = []
    problems: list[Problem] = []
    for source, document in documents:
        try:
            requests.append(read_request(document, pool, organization, source))
        except RequestInvalid as error:
            problems += error.within(source).problems
    if problems:
        raise RequestInvalid(problems)
    quota = work_unit_quota()
    if quota is not None and database_is_new():  # refused before the database file is created
        unique = {request.workload_id: request.document for request in requests}
        if over := quota_problems(None, list(unique.values()), quota):
            raise RequestInvalid(over)
    try:
        return records.store_requests(open_database(), requests, quota)
    except RequestIdConflict as conflict:
        raise RequestIdConflict([Problem(f"{documents[index][0]}: {problem.path}", problem.message)
                                 for index, problem in zip(conflict.indexes, conflict.problems)],
                                conflict.indexes) from None

