"""Running shards on Agents: one attempt per (shard, Agent), faults injected by configuration.

An attempt records the Agent, the backend actually used, the digest of its result, the
work units and the wall time. Faults from the pool file (DESIGN §3.8) are decided by a
hash of (seed, shard, Agent, attempt), so a drill replays identically.
"""

from __future__ import annotations

import time
from fractions import Fraction

from forge_pipeline.assign.pool import Agent
from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import Backend, select_backend
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.plan.planning import sample_score

HUB = Agent(agent_id="hub", provider_id="platform", hardware="cpu", capabilities=(), region="hub", capacity=1)
MAX_ATTEMPTS_PER_SHARD = 4
SLOW_DELAY_S = 0.05


class ShardsExhausted(RuntimeError):
    """A shard failed on every Agent able to run it: the workload cannot finalize."""


class InputFault(RuntimeError):
    """The request's input fails a shard deterministically: every Agent's attempt and the hub's own
    failed with the same error. The request's fault, never the Agents' (their attempts stay unjudged)."""


def backend_for(agent: Agent) -> Backend:
    """A gpu Agent computes with CuPy (it was only assigned where a device is visible); a cpu Agent with the
    compiled CPU backend (numba) where it is installed, NumPy otherwise."""
    return select_backend("gpu" if agent.hardware == "gpu" else "cpu")


def fault_strikes(agent: Agent, seed: int, shard_index: int, attempt_key: int) -> bool:
    if agent.fault is None:
        return False
    score = sample_score(seed, shard_index, f"fault:{agent.agent_id}:{attempt_key}")
    return score < Fraction(agent.fault.rate) * (1 << 64)


def flip_low_bit(result: dict) -> dict:
    """Corruption as a wrong Agent would produce it: one bit of the first integer field changed."""
    corrupted = dict(result)
    for key in sorted(corrupted):
        if isinstance(corrupted[key], int) and not isinstance(corrupted[key], bool) and key not in ("start", "stop"):
            corrupted[key] ^= 1
            return corrupted
    raise ValueError("result has no integer field to corrupt")


def execute_attempt(plan: dict, arguments: dict, shard_index: int, agent: Agent, attempt_key: int = 0,
                    role: str = "primary") -> dict:
    primitive = get_primitive(plan["primitive"])
    shard = plan["shards"][shard_index]
    seed = plan["seed"]
    strikes = fault_strikes(agent, seed, shard_index, attempt_key)
    kind = agent.fault.kind if strikes else None
    started = time.perf_counter()
    status, result, detail, backend = "completed", None, "", None
    try:
        backend = backend_for(agent)
        if kind == "crash":
            status, detail = "crashed", "the Agent's shard process raised"
        elif kind == "timeout":
            status, detail = "timed_out", "no result before the shard deadline"
        elif kind == "lazy":
            result, detail = primitive.plausible_result(arguments, shard["start"], shard["stop"]), "fault: lazy"
        else:
            if kind == "slow":
                time.sleep(SLOW_DELAY_S)
            result = primitive.execute_shard(arguments, seed, shard["start"], shard["stop"], backend)
            if kind == "corrupt":
                result, detail = flip_low_bit(result), "fault: corrupt"
    except Exception as error:  # whatever breaks on an Agent is a failed attempt, retried elsewhere
        status, result, detail = "crashed", None, f"{type(error).__name__}: {error}"
    wall_ms = round((time.perf_counter() - started) * 1000)
    return {
        "shard_index": shard_index,
        "agent_id": agent.agent_id,
        "provider_id": agent.provider_id,
        "backend": backend.name if backend else "none",
        "device": backend.device if backend else "none",
        "status": status,
        "digest": None if result is None else digest(result),
        "work_units": shard["work_units"],
        "wall_ms": wall_ms,
        "detail": "; ".join(part for part in (role if role != "primary" else "", detail) if part),
        "role": role,
        "result": result,
    }


class HubFailed(RuntimeError):
    """The platform's own execution failed: a platform fault, never an Agent's."""


def hub_execute(plan: dict, arguments: dict, shard_index: int, agent: Agent = HUB) -> dict:
    """Execute a shard on the hub (verification replay, recomputation, replay); raises when it fails."""
    attempt = execute_attempt(plan, arguments, shard_index, agent)
    if attempt["status"] != "completed":
        raise HubFailed(f"shard {shard_index} failed on {agent.agent_id}: {attempt['detail']}")
    return attempt


def run_batch(plan: dict, arguments: dict, agent: Agent, shard_indices: list[int],
              probation_shard: int | None = None) -> list[dict]:
    """An Agent's batch; a quarantined Agent's probation shard is marked so it is judged, never billed."""
    return [execute_attempt(plan, arguments, index, agent,
                            role="probation" if index == probation_shard else "primary")
            for index in shard_indices]


def retry_failed(plan: dict, arguments: dict, attempts: list[dict], pick_agent) -> list[dict]:
    """Re-run shards short of completed attempts (1, or `replicas` under multi_node) on other
    Agents, up to the attempt limit; probation attempts do not count.

    `pick_agent(tried_agent_ids, providers_with_a_result)` returns the next Agent or None.
    Returns only the new attempts; raises ShardsExhausted naming the shard when capacity runs out.
    """
    required = plan["verification"]["replicas"]
    limit = MAX_ATTEMPTS_PER_SHARD * required
    new_attempts: list[dict] = []
    for shard in plan["shards"]:
        tried = [a for a in attempts if a["shard_index"] == shard["index"] and a.get("role") != "probation"]
        while sum(attempt["status"] == "completed" for attempt in tried) < required:
            agent = pick_agent({a["agent_id"] for a in tried},
                               {a["provider_id"] for a in tried if a["status"] == "completed"})
            if agent is None or len(tried) >= limit:
                raise_input_fault(plan, arguments, shard["index"], tried)
                reasons = "; ".join(f"{attempt['agent_id']}: {attempt['status']}" for attempt in tried)
                raise ShardsExhausted(f"shard {shard['index']} failed on every Agent able to run it ({reasons})")
            attempt = execute_attempt(plan, arguments, shard["index"], agent, attempt_key=len(tried), role="retry")
            tried.append(attempt)
            new_attempts.append(attempt)
    return new_attempts


def raise_input_fault(plan: dict, arguments: dict, shard_index: int, tried: list[dict]) -> None:
    """Tell an input fault from Agent faults: when every attempt of a shard raised the same error,
    the hub runs the shard too; if it raises that same error, the input is at fault (InputFault,
    naming the error, whose message names the argument where the primitive knows it). An Agent
    fault (an injected crash, a timeout, a lost device) differs between Agents or spares the hub."""
    errors = {_error_of(attempt) for attempt in tried}
    if not tried or any(attempt["status"] != "crashed" for attempt in tried) or len(errors) != 1:
        return
    hub = execute_attempt(plan, arguments, shard_index, HUB, role="hub")
    if hub["status"] == "crashed" and {_error_of(hub)} == errors:
        raise InputFault(f"shard {shard_index} fails alike on every Agent and on the hub, so the input is at "
                         f"fault: {_error_of(hub)}")


def _error_of(attempt: dict) -> str:
    """The error an attempt recorded, without its role prefix (`retry; `, `hub; `)."""
    return attempt["detail"].removeprefix(f"{attempt['role']}; ")
