"""The optional per-organization quota: at most FORGE_WORK_UNIT_QUOTA work units submitted by one
organization per billing cycle (unset: no quota), counted over its workloads admitted in the
current cycle that did not fail, and checked at admission inside the transaction that stores
the batch, so two concurrent submissions cannot both slip under it.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from sqlalchemy import Connection, select

from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.intake.problems import Problem
from forge_pipeline.states import State
from forge_pipeline.storage.database import workloads

QUOTA_VARIABLE = "FORGE_WORK_UNIT_QUOTA"


def work_unit_quota() -> int | None:
    """The quota in work units, or None when unset; ValueError for anything but a positive integer."""
    text = os.environ.get(QUOTA_VARIABLE, "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 20 and int(text) > 0):
        raise ValueError(f"must be a positive integer (work units per organization per billing cycle), got {text!r}")
    return int(text)


def request_work_units(document: dict) -> int:
    """The work units a canonical request asks for (all its items)."""
    primitive = get_primitive(document["primitive"])
    return primitive.work_units(document["arguments"], 0, primitive.item_count(document["arguments"]))


def quota_problems(connection: Connection | None, new_documents: list[dict], quota: int) -> list[Problem]:
    """Problems for each organization whose new requests would take it over `quota` this cycle
    (`connection` None: a database not created yet, where every organization has used nothing)."""
    from forge_pipeline.settle.settlement import cycle_of  # settlement imports the records that call this

    cycle = cycle_of(dt.datetime.now(dt.timezone.utc).date())
    asked: dict[str, int] = {}
    for document in new_documents:
        asked[document["organization"]] = asked.get(document["organization"], 0) + request_work_units(document)
    problems = []
    for organization, units in sorted(asked.items()):
        stored = [] if connection is None else connection.execute(select(workloads.c.request_json).where(
            workloads.c.organization == organization, workloads.c.state != State.FAILED.value,
            workloads.c.submitted_at >= cycle.start, workloads.c.submitted_at < cycle.end)).scalars()
        used = sum(request_work_units(json.loads(text)) for text in stored)
        if used + units > quota:
            problems.append(Problem("organization", f"{organization!r} has used {used} of its {quota} work units "
                                                    f"in billing cycle {cycle.key}; this asks for {units} more"))
    return problems
