"""The lifecycle, stage by stage, as plain functions: what each Dagster asset calls.

Each function moves the workload through the state machine and appends what it did.
The first stage claims the workload for one run, so two runs never execute it twice;
a run takes over a workload whose claiming run is dead and finishes it where it stands
(every stage records once: the plan, each stage's attempts, the usage record, postings).
A user-caused or capacity-caused failure (invalid request, no capable Agent, shards
exhausted, over budget) moves the workload to `Failed` with its reason and raises
`WorkloadFailed`; an unexpected error also moves it to `Failed` ("internal error") and
is re-raised with its traceback, so no workload is left stranded mid-lifecycle. Nothing
billable is written for a failed workload.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine

from forge_pipeline.aggregate.evidence import (aggregate, build_manifest, evidence_directory, evidence_path_of,
                                              write_bundle)
from forge_pipeline.assign.assignment import NoCapableAgent, assign_shards, retry_agent
from forge_pipeline.assign.pool import Pool
from forge_pipeline.assign.reliability import Reliability, reliability_of
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.execute.runner import InputFault, ShardsExhausted, retry_failed, run_batch
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.intake.request import validate_request
from forge_pipeline.plan.planning import build_plan
from forge_pipeline.settle.pricing import BudgetExceeded
from forge_pipeline.settle.rate_card import Unpriced
from forge_pipeline.settle.settlement import check_budget, post_workload_record, price_finalized
from forge_pipeline.states import IllegalTransition, State
from forge_pipeline.storage import records
from forge_pipeline.storage.database import utc_now
from forge_pipeline.verify.verification import verify_shards

T = TypeVar("T")
R = TypeVar("R")
class DeadlinePassed(RuntimeError):
    """The workload's wall-time limit (policy.wall_time_limit_s) ran out before it finished."""


WORKLOAD_FAULTS = (RequestInvalid, InputFault, NoCapableAgent, ShardsExhausted, BudgetExceeded, Unpriced, DeadlinePassed)


class WorkloadFailed(RuntimeError):
    """The workload ended Failed; the message is the recorded reason."""


class RunRefused(WorkloadFailed):
    """This run may not take the workload (another run has or had its lifecycle); the workload is unchanged."""


def for_each(values: dict[str, T], stage: Callable[[str, T], R]) -> tuple[dict[str, R], dict[str, Exception]]:
    """One stage for every workload of a batch, keyed by workload id: (results, errors).

    A workload whose stage raises is left out of the results with its error, and the
    others go on: one failing workload never fails its batch. Its state was already
    recorded by the stage (Failed with the reason: `failing_on_fault`), or it stays where
    it was and the next run takes it over. Interrupts (BaseException) end the batch."""
    results: dict[str, R] = {}
    errors: dict[str, Exception] = {}
    for workload_id, value in values.items():
        try:
            results[workload_id] = stage(workload_id, value)
        except Exception as error:  # noqa: BLE001 - isolated per workload, reported by the caller
            errors[workload_id] = error
    return results, errors


@contextlib.contextmanager
def failing_on_fault(engine: Engine, workload_id: str, stage: str):
    try:
        yield
    except WORKLOAD_FAULTS as error:
        reason = f"{stage}: {error}"
        records.transition(engine, workload_id, State.FAILED, reason)
        raise WorkloadFailed(reason) from error
    except (WorkloadFailed, records.AlreadyClaimed):
        raise
    except Exception as error:
        with contextlib.suppress(IllegalTransition):  # a Finalized or Disputed workload stays as it is
            records.transition(engine, workload_id, State.FAILED, f"internal error in {stage}: {error!r}")
        raise


def admitted_request(engine: Engine, workload_id: str, claimant: str,
                     holder_is_dead: Callable[[str | None], bool] = records.no_takeover) -> dict:
    """Claim the workload for run `claimant` (taking it over when `holder_is_dead` says its
    claiming run is dead: records.claim), then re-validate its stored request (a request
    stored by an older version must still be valid)."""
    try:
        records.claim(engine, workload_id, claimant, holder_is_dead)
    except records.AlreadyClaimed as error:
        raise RunRefused(str(error)) from error
    workload = records.load_workload(engine, workload_id)
    with failing_on_fault(engine, workload_id, "intake"):
        request = validate_request(workload["request"]).document
    return {"workload_id": workload_id, "request": request, "seed": workload["seed"]}


def plan_workload(engine: Engine, admitted: dict, pool: Pool, gpu_assignable: bool) -> dict:
    """Shards, verification sample and Agent batches; GPU Agents only when `gpu_assignable`
    (assign.assignment.gpu_batches_assignable). Recorded once: a run that took over the
    workload gets the plan the first run made, since Agent history (which assignment and
    sampling read) has moved on since, partly through this very workload's attempts."""
    workload_id = admitted["workload_id"]
    recorded = records.plan_of(engine, workload_id)
    if recorded is not None:
        return recorded
    with failing_on_fault(engine, workload_id, "planning"):
        plan = build_plan(admitted["request"], admitted["seed"])
        check_budget(admitted["request"], plan)
        reliability = reliability_of(engine, [agent.agent_id for agent in pool.agents])
        assignment = assign_shards(plan, pool, gpu_assignable, reliability, admitted["request"]["tags"].get("region"))
    return records.record_plan(engine, workload_id, {
        **admitted, "plan": plan, **assignment, "gpu_assignable": gpu_assignable,
        "reliability": {agent_id: dataclasses.asdict(record) for agent_id, record in reliability.items()}})


def reliability_snapshot(planned: dict) -> dict[str, Reliability]:
    """The Agents' records as they stood at planning: what assignment and sampling used."""
    return {agent_id: Reliability(**fields) for agent_id, fields in planned["reliability"].items()}


def check_deadline(engine: Engine, planned: dict, stage: str) -> None:
    """Before each stage after planning: a workload whose wall-time limit (policy.wall_time_limit_s,
    counted from its first claim, so a crash and a takeover do not reset it) has run out ends
    Failed with that reason (WorkloadFailed). A stage already running is not cut short."""
    limit_s = planned["request"]["policy"].get("wall_time_limit_s")
    if limit_s is None:
        return
    started = dt.datetime.strptime(records.claimed_at(engine, planned["workload_id"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    elapsed_s = (dt.datetime.now(dt.timezone.utc) - started.replace(tzinfo=dt.timezone.utc)).total_seconds()
    with failing_on_fault(engine, planned["workload_id"], stage):
        if elapsed_s > limit_s:
            raise DeadlinePassed(f"wall-time limit of {limit_s} s passed ({elapsed_s:.1f} s since it was claimed)")


def start_execution(engine: Engine, planned: dict) -> None:
    check_deadline(engine, planned, "execution")
    records.transition(engine, planned["workload_id"], State.RUNNING, f"{len(planned['batches'])} Agent batches",
                       forward_only=True)


def execute_batch(planned: dict, pool: Pool, agent_id: str) -> list[dict]:
    return run_batch(planned["plan"], planned["request"]["arguments"], pool.agent(agent_id), planned["batches"][agent_id],
                     planned["probation"].get(agent_id))


def collect_attempts(engine: Engine, planned: dict, pool: Pool, batch_attempts: list[list[dict]],
                     gpu_visible: bool) -> list[dict]:
    """Record every attempt, retry failed shards on other Agents, return all attempts.

    `batch_attempts` holds lists of attempts in any order; they are recorded in shard
    order, so attempt numbering never depends on which step finished first. Retries run
    here, in this process: GPU Agents are retried only when `gpu_visible` (this process
    sees a device), whatever planning was allowed to assign."""
    workload_id, plan = planned["workload_id"], planned["plan"]
    attempts = records.record_attempts(engine, workload_id, sorted(
        (attempt for batch in batch_attempts for attempt in batch),
        key=lambda attempt: (attempt["shard_index"], attempt["agent_id"])), origin="batch")

    reliability = reliability_snapshot(planned)

    def pick_agent(tried_agents: set[str], providers_with_result: set[str]):
        return retry_agent(pool, plan, gpu_visible, reliability, tried_agents, providers_with_result,
                           distinct_providers=plan["verification"]["replicas"] > 1)

    with failing_on_fault(engine, workload_id, "execution"):
        retries = retry_failed(plan, planned["request"]["arguments"], attempts, pick_agent)
    attempts += records.record_attempts(engine, workload_id, retries, origin="retry")
    return sorted(attempts, key=lambda attempt: (attempt["shard_index"], attempt["attempt"]))


def verify_workload(engine: Engine, planned: dict, attempts: list[dict]) -> dict:
    workload_id = planned["workload_id"]
    check_deadline(engine, planned, "verification")
    records.transition(engine, workload_id, State.VERIFYING, f"mode {planned['plan']['verification']['mode']}",
                       forward_only=True)
    with failing_on_fault(engine, workload_id, "verification"):
        report = verify_shards(planned["plan"], planned["request"]["arguments"], attempts,
                               reliability_snapshot(planned))
        hub_attempts = records.record_attempts(engine, workload_id, report["hub_attempts"], origin="verification")
        records.set_verdicts(engine, workload_id,
                             [(v["shard_index"], v["attempt"], v["verdict"]) for v in report["verdicts"]])
    return {**report, "hub_attempts": hub_attempts, "attempts": attempts + hub_attempts}


def aggregate_workload(engine: Engine, planned: dict, report: dict, artifacts_root: Path) -> dict:
    workload_id = planned["workload_id"]
    check_deadline(engine, planned, "aggregation")
    records.transition(engine, workload_id, State.AGGREGATING, f"{len(report['accepted'])} shards accepted",
                       forward_only=True)
    plan, arguments = planned["plan"], planned["request"]["arguments"]
    with failing_on_fault(engine, workload_id, "aggregation"):
        output, output_digest, root = aggregate(plan, arguments, report)
        evidence_path = evidence_path_of(workload_id)
        directory = evidence_directory(evidence_path, artifacts_root)
        artifacts = get_primitive(plan["primitive"]).write_artifacts(arguments, plan["seed"], directory, output)
        manifest = build_manifest(workload_id, planned["request"], plan, report, report["attempts"], output_digest,
                                  root, artifacts)
        evidence_digest = write_bundle(directory, manifest, output)
    return {"workload_id": workload_id, "output": output, "output_digest": output_digest, "merkle_root": root,
            "evidence_digest": evidence_digest, "evidence_path": evidence_path, "backends": manifest["backends"],
            "kernel_digest": manifest["kernel_digest"]}


def finalize_workload(engine: Engine, planned: dict, report: dict, evidence: dict) -> dict:
    """Price the verified work, write the usage record (work units, attribution, replay
    references, charge) and its ledger record, and finalize. Each write is idempotent, so
    a step re-executed after a crash completes without posting twice."""
    with failing_on_fault(engine, planned["workload_id"], "finalization"):
        return _finalize(engine, planned, report, evidence)


def _finalize(engine: Engine, planned: dict, report: dict, evidence: dict) -> dict:
    request, plan = planned["request"], planned["plan"]
    nonbillable_units = sum(verdict["work_units"] for verdict in report["verdicts"]
                            if verdict["verdict"] in ("failed", "rejected"))
    charge = price_finalized(request, plan, nonbillable_units, evidence["output"])
    record = {
        "workload_id": planned["workload_id"],
        **{key: request[key] for key in ("request_id", "organization", "project", "workspace", "adapter",
                                          "primitive", "profile", "tags")},
        "work_units": plan["work_units"],
        "verified_work_units_by_provider": report["verified_work_units_by_provider"],
        "seed": str(plan["seed"]),
        "plan_digest": plan["plan_digest"],
        "output_digest": evidence["output_digest"],
        "merkle_root": evidence["merkle_root"],
        "evidence_digest": evidence["evidence_digest"],
        "evidence_path": evidence["evidence_path"],
        "kernel_digest": evidence["kernel_digest"],
        "verification_mode": report["mode"],
        "rate_card_version": charge.rate_card_version,
        "charge_ucr": charge.charge_ucr,
        "charge": charge.to_json(),
        "finalized_at": utc_now(),
    }
    records.write_usage_record(engine, record)
    post_workload_record(engine, records.usage_record_of(engine, planned["workload_id"]))
    records.transition(engine, planned["workload_id"], State.FINALIZED, f"output {evidence['output_digest'][:12]}",
                       expected=(State.AGGREGATING,))  # never resolves a dispute by re-materializing
    return records.usage_record_of(engine, planned["workload_id"])


def run_lifecycle_inline(engine: Engine, workload_id: str, pool: Pool, gpu_visible: bool, artifacts_root: Path) -> dict:
    """The whole lifecycle in this process without Dagster, stage by stage as the assets run it:
    for callers that need many finalized workloads quickly (the money and fault tests)."""
    planned = plan_workload(engine, admitted_request(engine, workload_id, f"inline-{uuid.uuid4().hex[:12]}"), pool,
                            gpu_visible)
    start_execution(engine, planned)
    batches = [execute_batch(planned, pool, agent_id) for agent_id in planned["batches"]]
    attempts = collect_attempts(engine, planned, pool, batches, gpu_visible)
    report = verify_workload(engine, planned, attempts)
    evidence = aggregate_workload(engine, planned, report, artifacts_root)
    return finalize_workload(engine, planned, report, evidence)
