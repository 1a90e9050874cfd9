"""Verification: because every primitive is bit-exact, a check is a digest comparison.

Modes (DESIGN §3.1):
- `none`: every completed shard is accepted unchecked.
- `spot`: the primitive's cheap structural checks (ranges, conservation) on sampled shards.
- `replay_sample`: sampled shards re-executed on the hub; the digests must match.
- `multi_node`: each shard ran on `replicas` Agents of distinct providers; the digest a
  strict majority agrees on wins; without a majority the hub recomputes the shard and
  its digest decides.
- `aggregation_check`: every shard's structural checks plus the plan's coverage (each
  result covers exactly its shard's range), so the merge sees exactly the request.

Sampling is adaptive (see assign/reliability.py): each shard's rate follows the record of
the Agent that computed it, and the rate used is reported per shard. A rejected shard
is recomputed by the hub, whose result replaces it; rejected and failed attempts are
never billed nor paid. Probation attempts (quarantined Agents) are judged against the
accepted result and change only their Agent's record.
"""

from __future__ import annotations

import enum
from collections import Counter
from fractions import Fraction

from forge_pipeline.assign.reliability import Reliability
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.execute.runner import hub_execute
from forge_pipeline.plan.planning import sample_score

STRUCTURAL_MODES = ("spot", "aggregation_check")


class Verdict(str, enum.Enum):
    ACCEPTED = "accepted"  # completed, not sampled (or mode none): billable, not a judgement of the Agent
    VERIFIED = "verified"  # checked and passed
    REJECTED = "rejected"  # checked and failed: not billable, not paid
    FAILED = "failed"  # crashed or timed out: not billable, not paid


def sample(seed: int, rates: dict[int, Fraction]) -> list[int]:
    """Shard i is sampled when its score falls below rate_i · 2^64; with any positive rate,
    at least the lowest-scoring eligible shard, so no workload goes wholly unchecked."""
    scores = {index: sample_score(seed, index, "verify") for index, rate in rates.items() if rate > 0}
    chosen = [index for index, score in scores.items() if score < rates[index] * (1 << 64)]
    if not chosen and scores:
        chosen = [min(scores, key=lambda index: (scores[index], index))]
    return sorted(chosen)


def verify_shards(plan: dict, arguments: dict, attempts: list[dict], reliability: dict[str, Reliability]) -> dict:
    """Judge every attempt; returns the verification report (verdicts, hub replacements,
    the accepted attempt of each shard, verified work units by provider, rates used)."""
    primitive = get_primitive(plan["primitive"])
    mode, base_rate = plan["verification"]["mode"], Fraction(plan["verification"]["sample_rate"])
    regular = [attempt for attempt in attempts if attempt.get("role") != "probation"]
    completed = {shard["index"]: [a for a in regular if a["shard_index"] == shard["index"] and a["status"] == "completed"]
                 for shard in plan["shards"]}
    verdicts = [_verdict(a, Verdict.FAILED, "attempt", a["detail"]) for a in regular if a["status"] != "completed"]
    rates = {}
    if mode in ("spot", "replay_sample"):
        rates = {index: reliability[runs[-1]["agent_id"]].sample_rate(base_rate) for index, runs in completed.items()}
    sampled = set(sample(plan["seed"], rates)) if rates else set()
    hub_attempts, accepted, credited = [], {}, []
    for shard in plan["shards"]:
        runs = completed[shard["index"]]
        if mode == "multi_node":
            judged, hub = _majority(plan, arguments, shard, runs)
        else:
            judged, hub = _single(plan, arguments, primitive, shard, runs[-1], mode, shard["index"] in sampled)
        verdicts += judged
        if hub is not None:
            hub_attempts.append({**hub, "verdict": Verdict.VERIFIED.value})
        winners = [run for run, verdict in zip(runs if mode == "multi_node" else runs[-1:], judged)
                   if verdict["verdict"] in (Verdict.ACCEPTED.value, Verdict.VERIFIED.value)]
        accepted[shard["index"]] = winners[0] if winners else hub
        credited += winners if winners else [hub]
    verdicts += _probation(attempts, accepted)
    contributions: dict[str, int] = {}
    for attempt in credited:
        contributions[attempt["provider_id"]] = contributions.get(attempt["provider_id"], 0) + attempt["work_units"]
    return {
        "mode": mode,
        "sample_rate": plan["verification"]["sample_rate"],
        "sample_rates": {str(index): f"{rate.numerator}/{rate.denominator}" for index, rate in sorted(rates.items())},
        "sampled": sorted(sampled),
        "verdicts": verdicts,
        "hub_attempts": hub_attempts,
        "accepted": [accepted[shard["index"]] for shard in plan["shards"]],
        "rejected_shards": sorted({v["shard_index"] for v in verdicts if v["verdict"] == Verdict.REJECTED.value
                                   and v["method"] != "probation"}),
        "verified_work_units_by_provider": dict(sorted(contributions.items())),
    }


def _single(plan: dict, arguments: dict, primitive, shard: dict, attempt: dict, mode: str,
            sampled: bool) -> tuple[list[dict], dict | None]:
    """One completed attempt judged by the mode; a rejection brings the hub's recomputation."""
    verdict, method, reason, hub = Verdict.ACCEPTED, "none", "", None
    if mode == "aggregation_check" or (mode == "spot" and sampled):
        problems = primitive.check_shard(arguments, shard["start"], shard["stop"], attempt["result"])
        if attempt["result"].get("start", shard["start"]) != shard["start"] or \
                attempt["result"].get("stop", shard["stop"]) != shard["stop"]:
            problems.append("result does not cover exactly its shard's range")
        verdict, method, reason = (Verdict.REJECTED if problems else Verdict.VERIFIED), mode, "; ".join(problems)
    elif mode == "replay_sample" and sampled:
        hub = hub_execute(plan, arguments, shard["index"])
        matches = hub["digest"] == attempt["digest"]
        verdict, method = (Verdict.VERIFIED if matches else Verdict.REJECTED), mode
        reason = "" if matches else f"digest {attempt['digest'][:12]} != hub replay {hub['digest'][:12]}"
        hub = None if matches else hub
    if verdict is Verdict.REJECTED and hub is None:
        hub = hub_execute(plan, arguments, shard["index"])
    return [_verdict(attempt, verdict, method, reason)], hub


def _majority(plan: dict, arguments: dict, shard: dict, runs: list[dict]) -> tuple[list[dict], dict | None]:
    """The digest a strict majority of replicas agrees on wins, one vote per provider (two
    Agents of one provider are one party); short of `replicas` voters or a majority, the hub decides."""
    voters = list({run["provider_id"]: run for run in reversed(runs)}.values())
    digest, count = Counter(run["digest"] for run in voters).most_common(1)[0]
    hub = None
    if count * 2 <= len(voters) or len(voters) < plan["verification"]["replicas"]:
        hub = hub_execute(plan, arguments, shard["index"])
        digest = hub["digest"]
    judged = [_verdict(run, Verdict.VERIFIED if run["digest"] == digest else Verdict.REJECTED, "multi_node",
                       "" if run["digest"] == digest else f"outvoted: {run['digest'][:12]} != {digest[:12]}")
              for run in runs]
    return judged, hub


def _probation(attempts: list[dict], accepted: dict[int, dict]) -> list[dict]:
    judged = []
    for attempt in attempts:
        if attempt.get("role") != "probation":
            continue
        if attempt["status"] != "completed":
            judged.append(_verdict(attempt, Verdict.FAILED, "probation", attempt["detail"]))
            continue
        passed = attempt["digest"] == accepted[attempt["shard_index"]]["digest"]
        judged.append(_verdict(attempt, Verdict.VERIFIED if passed else Verdict.REJECTED, "probation",
                               "" if passed else "probation result differs from the accepted result"))
    return judged


def _verdict(attempt: dict, verdict: Verdict, method: str, reason: str) -> dict:
    return {"shard_index": attempt["shard_index"], "attempt": attempt.get("attempt"), "agent_id": attempt["agent_id"],
            "provider_id": attempt["provider_id"], "digest": attempt["digest"], "work_units": attempt["work_units"],
            "role": attempt.get("role", "primary"), "verdict": verdict.value, "method": method, "reason": reason}
