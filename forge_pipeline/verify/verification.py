"""Verification: because every primitive is bit-exact, a check is a digest comparison.

Modes (DESIGN §3.1): `none` accepts every completed shard; `spot` runs the primitive's
cheap structural checks on the sampled shards; `replay_sample` re-executes the sampled
shards on the hub and compares digests. A rejected shard is recomputed by the hub, whose
result replaces it; the rejected attempt is never billed nor paid.
"""

from __future__ import annotations

import enum

from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.execute.runner import HUB, execute_attempt


class Verdict(str, enum.Enum):
    ACCEPTED = "accepted"  # completed, not sampled (or mode none)
    VERIFIED = "verified"  # sampled and passed
    REJECTED = "rejected"  # sampled and failed: not billable, not paid
    FAILED = "failed"  # crashed or timed out: not billable, not paid


def final_attempts(attempts: list[dict]) -> dict[int, dict]:
    """The last completed attempt of each shard: the one verification judges."""
    final: dict[int, dict] = {}
    for attempt in attempts:
        if attempt["status"] == "completed":
            final[attempt["shard_index"]] = attempt
    return final


def verify_shards(plan: dict, arguments: dict, attempts: list[dict]) -> dict:
    """Judge each shard's final attempt; returns the verification report.

    The report lists a verdict for every attempt, the hub attempts that replaced
    rejected shards, and the accepted result of every shard in shard order.
    """
    primitive = get_primitive(plan["primitive"])
    mode = plan["verification"]["mode"]
    sampled = set(plan["verification"].get("sampled", []))
    final = final_attempts(attempts)
    verdicts: list[dict] = []
    hub_attempts: list[dict] = []
    accepted: dict[int, dict] = {}
    for attempt in attempts:
        if attempt["status"] != "completed":
            verdicts.append(_verdict(attempt, Verdict.FAILED, "attempt", attempt["detail"]))
        elif final[attempt["shard_index"]] is not attempt:
            verdicts.append(_verdict(attempt, Verdict.ACCEPTED, "superseded", "a later attempt completed"))
    for shard in plan["shards"]:
        attempt = final[shard["index"]]
        verdict, method, reason, replay = Verdict.ACCEPTED, "none", "", None
        if shard["index"] in sampled and mode == "spot":
            problems = primitive.check_shard(arguments, shard["start"], shard["stop"], attempt["result"])
            verdict, method, reason = (Verdict.REJECTED if problems else Verdict.VERIFIED), "spot", "; ".join(problems)
        elif shard["index"] in sampled and mode == "replay_sample":
            replay = execute_attempt(plan, arguments, shard["index"], HUB)
            matches = replay["digest"] == attempt["digest"]
            verdict, method = (Verdict.VERIFIED if matches else Verdict.REJECTED), "replay_sample"
            reason = "" if matches else f"digest {attempt['digest'][:12]} != hub replay {replay['digest'][:12]}"
        verdicts.append(_verdict(attempt, verdict, method, reason))
        if verdict is Verdict.REJECTED:
            replacement = replay or execute_attempt(plan, arguments, shard["index"], HUB)
            hub_attempts.append({**replacement, "verdict": Verdict.VERIFIED.value})
            accepted[shard["index"]] = replacement
        else:
            accepted[shard["index"]] = attempt
    contributions: dict[str, int] = {}
    for attempt in accepted.values():
        contributions[attempt["provider_id"]] = contributions.get(attempt["provider_id"], 0) + attempt["work_units"]
    return {
        "mode": mode,
        "sample_rate": plan["verification"]["sample_rate"],
        "sampled": sorted(sampled),
        "verdicts": verdicts,
        "hub_attempts": hub_attempts,
        "accepted": [accepted[shard["index"]] for shard in plan["shards"]],
        "rejected_shards": sorted(v["shard_index"] for v in verdicts if v["verdict"] == Verdict.REJECTED.value),
        "verified_work_units_by_provider": dict(sorted(contributions.items())),
    }


def _verdict(attempt: dict, verdict: Verdict, method: str, reason: str) -> dict:
    return {"shard_index": attempt["shard_index"], "attempt": attempt.get("attempt"), "agent_id": attempt["agent_id"],
            "provider_id": attempt["provider_id"], "digest": attempt["digest"], "work_units": attempt["work_units"],
            "verdict": verdict.value, "method": method, "reason": reason}
