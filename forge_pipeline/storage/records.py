"""Reading and appending workload records: requests, state events, shard attempts, usage.

Every write is one transaction. State changes append an event; the `state` column on
`workloads` is the projection of the latest event, kept for cheap queries.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from forge_pipeline.canonical import canonical_json
from forge_pipeline.intake.problems import Problem, RequestIdConflict, RequestInvalid
from forge_pipeline.intake.request import WorkloadRequest
from forge_pipeline.states import IN_FLIGHT, IllegalTransition, State, check_transition, reached
from forge_pipeline.storage.database import (WORKLOAD_LOCK_KEY, exclusive_transaction, execution_plans, shard_attempts,
                                             usage_records, utc_now, workload_events, workloads)


class UnknownWorkload(LookupError):
    pass


class AlreadyClaimed(RuntimeError):
    """The workload's lifecycle belongs to another run (or already ran)."""


def store_request(engine: Engine, request: WorkloadRequest) -> tuple[str, bool]:
    """Admit one validated request; see `store_requests`."""
    return store_requests(engine, [request])[0]


STORED_LOOKUP_BATCH = 500  # ids per `IN (...)`: well under every database's limit on bound parameters


def store_requests(engine: Engine, requests: list[WorkloadRequest],
                   work_unit_quota: int | None = None) -> list[tuple[str, bool]]:
    """Admit validated requests as Pending workloads, all or none; returns (workload_id, newly_created) each.

    `request_id` is the client's idempotency key: the same request again is the same
    workload; the same key with different content (stored, or earlier in the batch) is
    refused with RequestIdConflict, as a payment API would, and then nothing of the batch
    is stored. With `work_unit_quota`, an organization whose new requests would take it past
    that many work units this billing cycle is refused (RequestInvalid), in the same transaction.
    The stored documents are read with one query per STORED_LOOKUP_BATCH ids and the new ones
    written with one multi-row INSERT per table: a statement per request made the writer lock's
    hold time, and so the HTTP API's submissions per second, several times longer.
    """
    from forge_pipeline.intake.quota import quota_problems

    outcome, problems, conflicting, seen, new = [], [], [], {}, []
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        ids = sorted({request.workload_id for request in requests})
        stored = {}
        for start in range(0, len(ids), STORED_LOOKUP_BATCH):
            stored.update(connection.execute(select(workloads.c.workload_id, workloads.c.request_json).where(
                workloads.c.workload_id.in_(ids[start:start + STORED_LOOKUP_BATCH]))).all())
        for index, request in enumerate(requests):
            request_json = canonical_json(request.document).decode()
            existing = seen.get(request.workload_id) or stored.get(request.workload_id)
            if existing is not None and existing != request_json:
                problems.append(Problem("request_id", f"{request.document['request_id']!r} was already used for a "
                                                      f"different request (workload {request.workload_id})"))
                conflicting.append(index)
            elif existing is None:
                new.append((request, request_json))
            seen[request.workload_id] = request_json
            outcome.append((request.workload_id, existing is None))
        if problems:
            raise RequestIdConflict(problems, conflicting)  # rolls the whole batch back
        if work_unit_quota is not None and (over := quota_problems(connection, [r.document for r, _ in new],
                                                                    work_unit_quota)):
            raise RequestInvalid(over)
        _insert_workloads(connection, new)
    return outcome


def _insert_workloads(connection, new: list[tuple[WorkloadRequest, str]]) -> None:
    """Pending workloads and their first events, one multi-row INSERT each."""
    if not new:
        return
    now = utc_now()
    connection.execute(insert(workloads), [dict(
        workload_id=request.workload_id, request_id=document["request_id"],
        organization=document["organization"], project=document["project"], workspace=document["workspace"],
        adapter=document["adapter"], primitive=document["primitive"], profile=document["profile"],
        request_json=request_json, seed=str(document["replay"].get("seed", secrets.randbits(64))),
        state=State.PENDING.value, state_reason="submitted", submitted_at=now, updated_at=now,
    ) for request, request_json in new for document in (request.document,)])
    connection.execute(insert(workload_events), [dict(
        workload_id=request.workload_id, from_state=None, to_state=State.PENDING.value, reason="submitted", at=now,
    ) for request, _ in new])


def load_workload(engine: Engine, workload_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(workloads).where(workloads.c.workload_id == workload_id)).mappings().first()
    if row is None:
        raise UnknownWorkload(f"no workload {workload_id!r}")
    record = dict(row)
    record["request"] = json.loads(record.pop("request_json"))
    record["seed"] = int(record["seed"])
    return record


def list_workload_ids(engine: Engine, state: State | None = None) -> list[str]:
    query = select(workloads.c.workload_id).order_by(workloads.c.submitted_at, workloads.c.workload_id)
    if state is not None:
        query = query.where(workloads.c.state == state.value)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def transition(engine: Engine, workload_id: str, target: State, reason: str,
               expected: tuple[State, ...] | None = None, forward_only: bool = False) -> None:
    """Append a state event, under the workload lock (a read-then-write must not interleave).

    Moving to the state the workload is already in is a no-op, so re-executing a Dagster
    step after a failure does not trip the state machine. `expected` narrows the legal
    sources: finalization comes only from Aggregating, never from Disputed. With
    `forward_only`, a workload already past `target` on the forward path stays where it
    is: a run that took over from a dead one repeats the stages the dead run finished."""
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        current = connection.execute(
            select(workloads.c.state).where(workloads.c.workload_id == workload_id)
        ).scalar_one_or_none()
        if current is None:
            raise UnknownWorkload(f"no workload {workload_id!r}")
        if current == target.value or (forward_only and reached(State(current), target)):
            return
        if expected is not None and State(current) not in expected:
            raise IllegalTransition(f"{workload_id} is {current}; {target.value} here needs "
                                    f"{' or '.join(state.value for state in expected)}")
        check_transition(State(current), target)
        now = utc_now()
        connection.execute(update(workloads).where(workloads.c.workload_id == workload_id)
                           .values(state=target.value, state_reason=reason, updated_at=now))
        connection.execute(insert(workload_events).values(
            workload_id=workload_id, from_state=current, to_state=target.value, reason=reason, at=now))


def no_takeover(holder: str | None) -> bool:
    """A liveness check for callers without runs to ask about (the inline lifecycle, tests): every holder lives."""
    return False


def claim(engine: Engine, workload_id: str, claimant: str,
          holder_is_dead: Callable[[str | None], bool] = no_takeover) -> State:
    """Take the workload's lifecycle for run `claimant`; returns the state it continues from.

    A Pending workload moves to Planned. A re-execution of the claiming run continues. A
    workload in flight (Planned ... Aggregating) whose claimant is dead (`holder_is_dead`:
    its run failed, was canceled or lost its process; a null claimant predates claims) is
    taken over where it stands: every stage records once, so finishing it posts nothing
    twice. Anyone else is refused with the reason (AlreadyClaimed). The liveness check runs
    outside the workload lock; the takeover then happens only if the claim is unchanged."""
    row = _claim_row(engine, workload_id)
    state = State(row.state)
    if state in IN_FLIGHT and row.claimed_by == claimant:
        return state
    takeover = state in IN_FLIGHT and holder_is_dead(row.claimed_by)
    if state != State.PENDING and not takeover:
        raise AlreadyClaimed(f"{workload_id} is {row.state} ({row.state_reason}): "
                             + ("another run has its lifecycle" if state in IN_FLIGHT else
                                "its lifecycle has ended; to reproduce it, launch the replay_workload job on "
                                f"partition {workload_id} in the UI (or `forge-pool replay {workload_id}`)"))
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        now = utc_now()
        unchanged = (workloads.c.workload_id == workload_id) & (workloads.c.state == row.state)
        unchanged &= (workloads.c.claimed_by.is_(None) if row.claimed_by is None
                      else workloads.c.claimed_by == row.claimed_by)
        reason = (f"taken over by run {claimant} from run {row.claimed_by}, which is dead" if takeover
                  else f"claimed by run {claimant}")
        values = {"claimed_by": claimant, "state_reason": reason, "updated_at": now}
        if not takeover:
            values["state"] = State.PLANNED.value
        if connection.execute(update(workloads).where(unchanged).values(**values)).rowcount != 1:
            raise AlreadyClaimed(f"{workload_id}: another run claimed it at the same moment")
        if not takeover:
            connection.execute(insert(workload_events).values(
                workload_id=workload_id, from_state=State.PENDING.value, to_state=State.PLANNED.value, reason=reason,
                at=now))
    return State.PLANNED if not takeover else state


def _claim_row(engine: Engine, workload_id: str):
    with engine.connect() as connection:
        row = connection.execute(select(workloads.c.state, workloads.c.state_reason, workloads.c.claimed_by)
                                 .where(workloads.c.workload_id == workload_id)).first()
    if row is None:
        raise UnknownWorkload(f"no workload {workload_id!r}")
    return row


def claimed_at(engine: Engine, workload_id: str) -> str | None:
    """When the workload was first claimed (its Pending -> Planned event), or None while Pending."""
    with engine.connect() as connection:
        return connection.execute(select(workload_events.c.at).where(
            workload_events.c.workload_id == workload_id, workload_events.c.to_state == State.PLANNED.value)
            .order_by(workload_events.c.event_id).limit(1)).scalar_one_or_none()


def claims_in_flight(engine: Engine) -> dict[str, str | None]:
    """Every workload between claim and end (Planned ... Aggregating) and the run that holds it."""
    with engine.connect() as connection:
        rows = connection.execute(select(workloads.c.workload_id, workloads.c.claimed_by)
                                  .where(workloads.c.state.in_([state.value for state in IN_FLIGHT]))
                                  .order_by(workloads.c.submitted_at, workloads.c.workload_id))
        return {workload_id: claimed_by for workload_id, claimed_by in rows}


def record_plan(engine: Engine, workload_id: str, planned: dict) -> dict:
    """Record the workload's plan once; returns the plan recorded first (a later one is not kept)."""
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        recorded = connection.execute(select(execution_plans.c.plan_json)
                                      .where(execution_plans.c.workload_id == workload_id)).scalar_one_or_none()
        if recorded is not None:
            return json.loads(recorded)
        connection.execute(insert(execution_plans).values(workload_id=workload_id, plan_json=canonical_json(
            planned).decode(), planned_at=utc_now()))
    return planned


def plan_of(engine: Engine, workload_id: str) -> dict | None:
    with engine.connect() as connection:
        value = connection.execute(select(execution_plans.c.plan_json)
                                   .where(execution_plans.c.workload_id == workload_id)).scalar_one_or_none()
    return None if value is None else json.loads(value)


def workload_events_of(engine: Engine, workload_id: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(select(workload_events).where(workload_events.c.workload_id == workload_id)
                                  .order_by(workload_events.c.event_id)).mappings()
        return [dict(row) for row in rows]


ATTEMPT_ORIGINS = ("batch", "retry", "verification")
ATTEMPT_IDENTITY = ("shard_index", "agent_id", "status", "digest")  # what a re-executed stage must reproduce


class AttemptsDiffer(RuntimeError):
    """A re-executed stage produced attempts other than those it recorded: something is not deterministic."""


def record_attempts(engine: Engine, workload_id: str, attempts: list[dict], origin: str) -> list[dict]:
    """Append one stage's shard attempts, each numbered after the shard's previous attempts.

    A stage records once: when the same stage of the workload runs again (a Dagster step
    re-executed after its commit), nothing is appended and the attempts get the numbers
    they were recorded with, provided they are the same attempts (shard, Agent, status,
    digest, in order); different ones raise AttemptsDiffer and nothing is written.
    """
    if origin not in ATTEMPT_ORIGINS:
        raise ValueError(f"attempt origin must be one of {', '.join(ATTEMPT_ORIGINS)}, got {origin!r}")
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        recorded = connection.execute(
            select(shard_attempts).where(shard_attempts.c.workload_id == workload_id, shard_attempts.c.origin == origin)
            .order_by(shard_attempts.c.attempt_id)).mappings().all()
        if recorded:
            return _as_recorded(workload_id, origin, attempts, recorded)
        numbered = []
        for attempt in attempts:
            previous = connection.execute(
                select(func.coalesce(func.max(shard_attempts.c.attempt), 0)).where(
                    shard_attempts.c.workload_id == workload_id,
                    shard_attempts.c.shard_index == attempt["shard_index"])
            ).scalar_one()
            row = {key: attempt[key] for key in ("shard_index", "agent_id", "provider_id", "backend", "device",
                                                 "status", "digest", "work_units", "wall_ms", "detail")}
            row.update(workload_id=workload_id, attempt=previous + 1, verdict=attempt.get("verdict", "pending"),
                       at=utc_now(), origin=origin)
            connection.execute(insert(shard_attempts).values(**row))
            numbered.append({**attempt, "attempt": previous + 1})
    return numbered


def _as_recorded(workload_id: str, origin: str, attempts: list[dict], recorded: list) -> list[dict]:
    def identity(attempt) -> tuple:
        return tuple(attempt[key] for key in ATTEMPT_IDENTITY)

    if [identity(attempt) for attempt in attempts] != [identity(row) for row in recorded]:
        raise AttemptsDiffer(f"workload {workload_id}: the {origin} attempts of this re-execution differ from the "
                             f"{len(recorded)} already recorded; nothing was written")
    return [{**attempt, "attempt": row["attempt"], "wall_ms": row["wall_ms"]}
            for attempt, row in zip(attempts, recorded, strict=True)]


def set_verdicts(engine: Engine, workload_id: str, verdicts: list[tuple[int, int, str]]) -> None:
    """(shard_index, attempt, verdict) for the attempts verification judged."""
    with engine.begin() as connection:
        for shard_index, attempt, verdict in verdicts:
            connection.execute(update(shard_attempts).where(
                shard_attempts.c.workload_id == workload_id, shard_attempts.c.shard_index == shard_index,
                shard_attempts.c.attempt == attempt).values(verdict=verdict))


def attempts_of(engine: Engine, workload_id: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(select(shard_attempts).where(shard_attempts.c.workload_id == workload_id)
                                  .order_by(shard_attempts.c.shard_index, shard_attempts.c.attempt)).mappings()
        return [dict(row) for row in rows]


def write_usage_record(engine: Engine, record: dict) -> bool:
    """Insert the workload's usage record once; a second write of the same workload is a no-op
    (under the workload lock: two runs finishing the same workload must not both insert)."""
    columns = {column.name for column in usage_records.columns} - {"record_json"}
    with exclusive_transaction(engine, WORKLOAD_LOCK_KEY) as connection:
        exists = connection.execute(select(usage_records.c.workload_id)
                                    .where(usage_records.c.workload_id == record["workload_id"])).first()
        if exists:
            return False
        connection.execute(insert(usage_records).values(
            **{key: record.get(key) for key in columns}, record_json=canonical_json(record).decode()))
    return True


def usage_record_of(engine: Engine, workload_id: str) -> dict | None:
    with engine.connect() as connection:
        value = connection.execute(select(usage_records.c.record_json)
                                   .where(usage_records.c.workload_id == workload_id)).scalar_one_or_none()
    return None if value is None else json.loads(value)
