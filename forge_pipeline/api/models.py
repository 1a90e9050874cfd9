"""Typed response models of the Web Core API: the OpenAPI schema at /openapi.json is generated from them.

Money is integer micro-credits (`*_ucr`); timestamps are UTC ISO-8601 text.
"""

from __future__ import annotations

from typing import Any, get_type_hints

from pydantic import BaseModel, Field, create_model

from forge_pipeline.settle.pricing import Charge


class FieldProblem(BaseModel):
    path: str = Field(description="the field path, e.g. arguments.obligors[3].pd (the CLI's paths)")
    message: str


class ProblemDetail(BaseModel):
    """RFC 9457 problem details; `problems` lists every problem of a refused request."""
    type: str
    title: str
    status: int
    detail: str
    instance: str
    problems: list[FieldProblem] = []


class Submitted(BaseModel):
    workload_id: str
    request_id: str
    created: bool = Field(description="true when this call stored the workload (201), false when it already was (200)")


class WorkloadIdentity(BaseModel):
    workload_id: str
    request_id: str
    organization: str
    project: str
    workspace: str
    primitive: str
    profile: str
    state: str
    state_reason: str
    submitted_at: str


class WorkloadStatus(WorkloadIdentity):
    """The `forge-pool status --json` object."""
    finalized_at: str | None
    seed: str = Field(description="uint64 as decimal text")
    work_units: int | None
    output: dict[str, Any] | None
    output_digest: str | None
    evidence_digest: str | None
    plan_digest: str | None
    rate_card_version: str | None
    charge_ucr: int | None


class WorkloadSummary(WorkloadIdentity):
    updated_at: str


class WorkloadPage(BaseModel):
    workloads: list[WorkloadSummary]
    next_page_token: str | None = Field(description="pass as page_token for the next page; null on the last")


# `Charge.to_json()`: the pricing dataclass's fields and its total.
ChargeBreakdown = create_model("ChargeBreakdown", charge_ucr=(int, ...),
                               **{name: (kind, ...) for name, kind in get_type_hints(Charge).items()})


class Estimate(BaseModel):
    """The planner's projected charge (artifact and retention prices depend on the output: 0 here)."""
    workload_id: str
    primitive: str
    profile: str
    verification: str
    work_units: int
    shard_count: int
    charge: ChargeBreakdown
    charge_ucr: int
    max_credits_ucr: int | None
    within_budget: bool = Field(description="false when planning would refuse it for policy.max_credits_ucr")


class DisputeBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class StatementLine(BaseModel):
    organization: str
    project: str
    workspace: str
    workloads: int
    refunds: int
    charge_ucr: int


class Statement(BaseModel):
    cycle: str
    lines: list[StatementLine]


class PayoutLine(BaseModel):
    provider_id: str
    workloads: int
    payout_ucr: int


class Payouts(BaseModel):
    cycle: str
    payouts: list[PayoutLine]


class AgentRecord(BaseModel):
    agent_id: str
    provider_id: str
    hardware: str
    verified: int
    rejected: int
    failed: int
    streak: int
    score: str = Field(description="(verified + 1) / (verified + 4·rejected + failed + 2), an exact fraction")
    quarantined: bool


class Health(BaseModel):
    status: str


# The request document of POST /v1/workloads and /v1/estimates (DESIGN §3.1). The body is
# read by the same parser and validator as `forge-pool submit`, so refusals carry the CLI's
# messages; this schema documents it (and lets a fuzzer build plausible documents).
REQUEST_BODY_SCHEMA = {
    "type": "object",
    "required": ["request_id", "project", "workspace", "adapter", "primitive", "profile", "arguments"],
    "properties": {
        "request_id": {"type": "string", "description": "the idempotency key (or the Idempotency-Key header)"},
        "organization": {"type": "string", "description": "defaults to the key's organization; another is refused"},
        "project": {"type": "string"},
        "workspace": {"type": "string"},
        "adapter": {"type": "string"},
        "primitive": {"type": "string", "example": "probabilistic_simulation/portfolio_loss@1"},
        "profile": {"type": "string", "example": "standard@1"},
        "policy": {"type": "object"},
        "arguments": {"type": "object"},
        "replay": {"type": "object", "properties": {"seed": {"type": "integer", "minimum": 0}}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
