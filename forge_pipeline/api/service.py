"""What the Web Core API does, as plain functions over the core (no web framework here).

Tenancy is decided in this module and only here: every read takes the asking
organization (`None` for an operator) and treats a workload of another organization
exactly as one that does not exist (`NotFound`, the same message), so no answer, error
or page token tells one organization anything about another.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import io
import json
from typing import Any

import polars as pl
from sqlalchemy import Engine, and_, or_, select

from forge_pipeline.aggregate.evidence import evidence_directory
from forge_pipeline.assign.pool import Pool
from forge_pipeline.assign.reliability import reliability_of
from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.intake.admission import read_request
from forge_pipeline.intake.quota import work_unit_quota
from forge_pipeline.plan.planning import build_plan
from forge_pipeline.settle import tables
from forge_pipeline.settle.pricing import BudgetExceeded, apply_budget_cap
from forge_pipeline.settle.settlement import (cycle_entries, cycle_of, dispute, export_lines, parse_cycle,
                                              planned_estimate)
from forge_pipeline.states import State
from forge_pipeline.status import workload_status
from forge_pipeline.storage import records
from forge_pipeline.storage.database import artifacts_root, workloads

PAGE_SIZE_MAX = 500
EXPORT_CHUNK_BYTES = 64 << 10
SUMMARY_FIELDS = ("workload_id", "request_id", "organization", "project", "workspace", "primitive", "profile",
                  "state", "state_reason", "submitted_at", "updated_at")


class NotFound(LookupError):
    """Absent, or another organization's: the two are indistinguishable by design."""


def submission(document: Any, organization: str | None, idempotency_key: str | None) -> Any:
    """The document to admit: the key's organization filled in where the body leaves it out, and the
    `Idempotency-Key` header taken as `request_id` (refused when the body names a different one)."""
    if not isinstance(document, dict):
        return document  # validation names the problem
    document = dict(document)
    if organization is not None:
        document.setdefault("organization", organization)
    if idempotency_key is not None:
        if document.setdefault("request_id", idempotency_key) != idempotency_key:
            raise RequestInvalid([Problem("request_id", "differs from the Idempotency-Key header; "
                                                        "send one of them, or the same value in both")])
    return document


def admit(engine: Engine, pool: Pool, documents: list, organization: str | None) -> list[tuple[str, bool]]:
    """Store request documents as `forge-pool submit` does (the intake's `read_request` for each, then
    `records.store_requests` within the organization's quota), all or none; returns (workload_id, newly
    created) for each. RequestInvalid for a bad document, its subclass RequestIdConflict for a request id that
    already names another document (stored, or earlier in `documents`)."""
    requests = [read_request(document, pool, organization) for document in documents]
    return records.store_requests(engine, requests, work_unit_quota())


class GroupAdmission:
    """Concurrent submissions share one database transaction (a group commit).

    Admission holds the workload writer lock and ends in a commit (an fsync) of a few
    milliseconds, so one transaction per submission caps a server at a few hundred per
    second however many arrive together. Here the submissions that arrive while a
    transaction is running wait, and go together in the next (at most MAX_BATCH, one
    transaction per organization). A batch is all or none, so when one of its documents is
    refused, each document of that batch is admitted alone, and every caller gets the
    answer it would have got alone. Call `admit` from the event loop.
    """

    MAX_BATCH = 256

    def __init__(self, engine: Engine, pool: Pool):
        self.engine, self.pool = engine, pool
        self.waiting: list[tuple[Any, str | None, asyncio.Future]] = []
        self.drainer: asyncio.Task | None = None

    async def admit(self, document: Any, organization: str | None) -> tuple[str, bool]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((document, organization, future))
        if self.drainer is None:
            self.drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:self.MAX_BATCH], self.waiting[self.MAX_BATCH:]
                outcomes = await asyncio.to_thread(self._store, [(document, organization)
                                                                 for document, organization, _ in batch])
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller went away (a timeout)
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.drainer = None

    def _store(self, batch: list[tuple[Any, str | None]]) -> list:
        """One outcome per submission: (workload_id, created) or the exception its caller gets."""
        outcomes: list = [None] * len(batch)
        by_organization: dict[str | None, list[int]] = {}
        for index, (_, organization) in enumerate(batch):
            by_organization.setdefault(organization, []).append(index)
        for organization, indexes in by_organization.items():
            try:
                stored = admit(self.engine, self.pool, [batch[index][0] for index in indexes], organization)
            except RequestInvalid as refusal:  # RequestIdConflict included
                if len(indexes) == 1:
                    outcomes[indexes[0]] = refusal
                else:  # someone's document was refused: each alone, so only its own caller hears of it
                    for index in indexes:
                        outcomes[index] = self._alone(batch[index][0], organization)
                continue
            except Exception as error:  # the database failed the transaction: every caller in it learns so
                stored = [error] * len(indexes)
            for index, outcome in zip(indexes, stored, strict=True):
                outcomes[index] = outcome
        return outcomes

    def _alone(self, document: Any, organization: str | None):
        try:
            [outcome] = admit(self.engine, self.pool, [document], organization)
            return outcome
        except Exception as error:  # RequestInvalid, RequestIdConflict, or the database's own
            return error


def estimate(pool: Pool, document: Any, organization: str | None) -> dict:
    """The planner's projected charge for a request, stored nowhere (seed §3.2). Artifact and
    retention prices depend on the output, so they are not in it (0 µcr)."""
    request = read_request(document, pool, organization)
    plan = build_plan(request.document, request.document["replay"].get("seed", 0))
    charge = planned_estimate(request.document, plan)
    cap = request.document["policy"]["max_credits_ucr"]
    try:
        apply_budget_cap(charge, cap)
        within_budget = True
    except BudgetExceeded:
        within_budget = False
    return {"workload_id": request.workload_id, "primitive": plan["primitive"], "profile": request.document["profile"],
            "verification": plan["verification"]["mode"], "work_units": plan["work_units"],
            "shard_count": len(plan["shards"]), "charge": charge.to_json(), "charge_ucr": charge.charge_ucr,
            "max_credits_ucr": cap, "within_budget": within_budget}


def owned_workload(engine: Engine, workload_id: str, organization: str | None) -> dict:
    """The workload record when `organization` (None: any) owns it; NotFound otherwise."""
    try:
        workload = records.load_workload(engine, workload_id)
    except records.UnknownWorkload:
        workload = None
    if workload is None or (organization is not None and workload["organization"] != organization):
        raise NotFound(f"no workload {workload_id!r}")
    return workload


def status_of(engine: Engine, workload_id: str, organization: str | None) -> dict:
    """The `forge-pool status --json` object of an owned workload."""
    owned_workload(engine, workload_id, organization)
    return workload_status(engine, workload_id)


def dispute_workload(engine: Engine, workload_id: str, organization: str | None, reason: str) -> dict:
    """Finalized -> Disputed (held out of settlement); IllegalTransition when not Finalized."""
    owned_workload(engine, workload_id, organization)
    dispute(engine, workload_id, reason)
    return workload_status(engine, workload_id)


def evidence_manifest(engine: Engine, workload_id: str, organization: str | None) -> dict:
    """The evidence bundle's manifest.json of an owned, finalized workload; NotFound before finalization."""
    owned_workload(engine, workload_id, organization)
    usage = records.usage_record_of(engine, workload_id)
    manifest = evidence_directory(usage["evidence_path"], artifacts_root()) / "manifest.json" if usage else None
    if manifest is None or not manifest.exists():
        raise NotFound(f"workload {workload_id!r} has no evidence bundle (it is finalized first)")
    return json.loads(manifest.read_bytes())


class PageTokens:
    """Opaque page tokens: the listing's position, bound to the asking organization and the filters,
    signed with HMAC-SHA256 under a server secret. A token of another organization, other filters or
    altered by one bit is not found (NotFound), like another organization's workload."""

    def __init__(self, secret: bytes):
        self.secret = secret

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self.secret, payload, hashlib.sha256).digest()[:16]

    def issue(self, listing: dict, after: tuple[str, str]) -> str:
        payload = json.dumps({**listing, "after": list(after)}, sort_keys=True, separators=(",", ":")).encode()
        return ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=")
                        for part in (payload, self._signature(payload)))

    def position(self, token: str, listing: dict) -> tuple[str, str]:
        try:
            payload, signature = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split("."))
            if hmac.compare_digest(signature, self._signature(payload)):
                decoded = json.loads(payload)
                if {key: decoded.get(key) for key in listing} == listing:
                    submitted_at, workload_id = decoded["after"]
                    return submitted_at, workload_id
        except ValueError:  # bad base64, bad JSON, wrong number of parts
            pass
        raise NotFound("no such page: page_token was not issued for this listing")


def workload_page(engine: Engine, tokens: PageTokens, organization: str | None, state: str | None,
                  cycle: str | None, page_token: str | None, limit: int) -> dict:
    """One page of workload summaries, oldest submission first: {"workloads": [...], "next_page_token"}.

    `state` filters by current state, `cycle` by the billing cycle of submission (a date in it);
    organization None (an operator) lists every organization. RequestInvalid for a bad filter."""
    problems = []
    if state is not None and state not in {member.value for member in State}:
        problems.append(Problem("state", f"must be one of {', '.join(member.value for member in State)}, "
                                         f"got {state!r}"))
    cycle_key = None
    if cycle is not None:
        try:
            cycle_key = parse_cycle(cycle)
        except RequestInvalid as error:
            problems += error.problems
    if not 1 <= limit <= PAGE_SIZE_MAX:
        problems.append(Problem("limit", f"must be in [1, {PAGE_SIZE_MAX}], got {limit}"))
    if problems:
        raise RequestInvalid(problems)
    listing = {"organization": organization, "state": state, "cycle": cycle_key}
    query = select(*(workloads.c[name] for name in SUMMARY_FIELDS))
    if organization is not None:
        query = query.where(workloads.c.organization == organization)
    if state is not None:
        query = query.where(workloads.c.state == state)
    if cycle_key is not None:
        window = cycle_of(dt.date.fromisoformat(cycle_key))
        query = query.where(workloads.c.submitted_at >= window.start, workloads.c.submitted_at < window.end)
    if page_token is not None:
        submitted_at, workload_id = tokens.position(page_token, listing)
        query = query.where(or_(workloads.c.submitted_at > submitted_at,
                                and_(workloads.c.submitted_at == submitted_at, workloads.c.workload_id > workload_id)))
    query = query.order_by(workloads.c.submitted_at, workloads.c.workload_id).limit(limit + 1)
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    page, more = rows[:limit], len(rows) > limit
    next_token = tokens.issue(listing, (page[-1]["submitted_at"], page[-1]["workload_id"])) if more else None
    return {"workloads": page, "next_page_token": next_token}


def credit_statement(engine: Engine, cycle: str, organization: str | None) -> dict:
    """The cycle's credit statement lines (per organization, project, workspace) of `organization` (None: all)."""
    cycle_key = parse_cycle(cycle)
    frame = tables.credit_statement(cycle_entries(engine, cycle_key, organization)).collect()
    return {"cycle": cycle_key, "lines": frame.to_dicts()}


def export_chunks(engine: Engine, cycle: str, organization: str | None, file_format: str):
    """The cycle's statement lines of `organization` (None: all), as `forge-pool export` writes them,
    in chunks of at most EXPORT_CHUNK_BYTES. RequestInvalid for a bad cycle or format."""
    if file_format not in ("csv", "parquet"):
        raise RequestInvalid([Problem("format", f"must be one of csv, parquet, got {file_format!r}")])
    lines = export_lines(engine, parse_cycle(cycle), organization)
    buffer = io.BytesIO()
    (lines.write_csv if file_format == "csv" else lines.write_parquet)(buffer)
    data = buffer.getvalue()
    return (data[start:start + EXPORT_CHUNK_BYTES] for start in range(0, max(len(data), 1), EXPORT_CHUNK_BYTES))


def provider_payouts(engine: Engine, cycle: str, provider_id: str | None) -> dict:
    """The cycle's payouts of `provider_id` (None: every provider), net of refunds."""
    cycle_key = parse_cycle(cycle)
    frame = tables.provider_payouts(cycle_entries(engine, cycle_key)).collect()
    if provider_id is not None:
        frame = frame.filter(pl.col("provider_id") == provider_id)
    return {"cycle": cycle_key, "payouts": frame.to_dicts()}


def agent_reliability(engine: Engine, pool: Pool, provider_id: str | None) -> list[dict]:
    """The pool's Agents of `provider_id` (None: all) with their reliability records."""
    agents = [agent for agent in pool.agents if provider_id is None or agent.provider_id == provider_id]
    history = reliability_of(engine, [agent.agent_id for agent in agents])
    listed = []
    for agent in agents:
        record = history[agent.agent_id]
        listed.append({"agent_id": agent.agent_id, "provider_id": agent.provider_id, "hardware": agent.hardware,
                       "verified": record.verified, "rejected": record.rejected, "failed": record.failed,
                       "streak": record.streak, "score": str(record.score), "quarantined": record.quarantined})
    return listed
