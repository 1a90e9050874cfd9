"""Shard assignment: which Agents run which shard, grouped into one batch per Agent.

Capable Agents (capability, execution class, and for `gpu` Agents: GPU batches can be
placed, see `gpu_batches_assignable`) that are not
quarantined share the shards greedily: each shard goes to the Agent with the least
queued work per unit of weight, weight = capacity × reliability score × 2 when the
Agent is in the request's region (`tags.region`), ties by Agent id. Deterministic for a
given pool, history and GPU placement. With `multi_node`, each shard goes to
`replicas` Agents of distinct providers. Each quarantined Agent gets one probation shard.
One Dagster step runs one batch (DESIGN §2), never one shard.
"""

from __future__ import annotations

import os
from fractions import Fraction

from forge_pipeline.assign.pool import Agent, Pool
from forge_pipeline.assign.reliability import Reliability
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.intake.problems import Problem, RequestInvalid

LOCALITY_BONUS = 2
# FORGE_GPU_BATCHES: where GPU Agent batches run. `local`: on this machine, so GPU Agents
# get work only where the planning process sees a CUDA device (one machine; a pool whose
# planning workers are GPU machines). `dedicated`: on workers of their own (the `gpu` Celery
# queue, the Kubernetes GPU node pool), so planning assigns them wherever it runs.
GPU_BATCH_PLACEMENTS = ("local", "dedicated")


class NoCapableAgent(RuntimeError):
    """No Agent in the pool can run this workload here: a typed reason to fail it."""


def gpu_batch_placement(value: str | None = None) -> str:
    placement = (value or os.environ.get("FORGE_GPU_BATCHES") or "local").lower()
    if placement not in GPU_BATCH_PLACEMENTS:
        raise ValueError(f"FORGE_GPU_BATCHES must be one of {', '.join(GPU_BATCH_PLACEMENTS)}, got {placement!r}")
    return placement


def gpu_batches_assignable(gpu_visible: bool, placement: str | None = None) -> bool:
    """Whether planning may give batches to GPU Agents: always with dedicated GPU workers,
    otherwise only where this process sees a device."""
    return gpu_batch_placement(placement) == "dedicated" or gpu_visible


def capable_agents(pool: Pool, primitive_name: str, execution_class: str, gpu_assignable: bool) -> list[Agent]:
    family = get_primitive(primitive_name).family
    agents = sorted(pool.eligible_agents(family, execution_class, gpu_assignable), key=lambda agent: agent.agent_id)
    if not agents:
        where = "GPU Agents included" if gpu_assignable else \
            "GPU Agents excluded: no CUDA device visible here and FORGE_GPU_BATCHES is not dedicated"
        raise NoCapableAgent(f"no Agent in {pool.source} can run {primitive_name} "
                             f"(execution class {execution_class}, {where})")
    return agents


def require_capable_pool(pool: Pool, document: dict) -> None:
    """At intake: refuse (RequestInvalid) a request no Agent of the pool could ever run, on any hardware."""
    try:
        capable_agents(pool, document["primitive"], document["policy"]["execution_class"], gpu_assignable=True)
    except NoCapableAgent as error:
        raise RequestInvalid([Problem("primitive", str(error))]) from None


def assign_shards(plan: dict, pool: Pool, gpu_assignable: bool, reliability: dict[str, Reliability],
                  region: str | None = None) -> dict:
    """{"batches": {agent_id: [shard indices]}, "probation": {agent_id: shard index}}."""
    agents = capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_assignable)
    healthy = [agent for agent in agents if not reliability[agent.agent_id].quarantined]
    if not healthy:
        raise NoCapableAgent(f"every Agent able to run {plan['primitive']} is quarantined")
    replicas = plan["verification"]["replicas"]
    if len({agent.provider_id for agent in healthy}) < replicas:
        raise NoCapableAgent(f"multi_node needs {replicas} providers with healthy Agents able to run "
                             f"{plan['primitive']}; {len({a.provider_id for a in healthy})} available")
    weight = {agent.agent_id: agent.capacity * reliability[agent.agent_id].score
              * (LOCALITY_BONUS if region is not None and agent.region == region else 1) for agent in healthy}
    queued = {agent.agent_id: 0 for agent in healthy}
    batches: dict[str, list[int]] = {}
    for shard in plan["shards"]:
        providers: set[str] = set()
        for _ in range(replicas):
            agent = min((agent for agent in healthy if agent.provider_id not in providers),
                        key=lambda agent: (Fraction(queued[agent.agent_id] + 1) / weight[agent.agent_id],
                                           agent.agent_id))
            providers.add(agent.provider_id)
            queued[agent.agent_id] += 1
            batches.setdefault(agent.agent_id, []).append(shard["index"])
    probation = {}
    for index, agent in enumerate(a for a in agents if reliability[a.agent_id].quarantined):
        probation[agent.agent_id] = index % len(plan["shards"])
        batches.setdefault(agent.agent_id, []).append(probation[agent.agent_id])
    return {"batches": batches, "probation": probation}


def retry_agent(pool: Pool, plan: dict, gpu_assignable: bool, reliability: dict[str, Reliability],
                excluded_agents: set[str], excluded_providers: set[str], distinct_providers: bool) -> Agent | None:
    """The first healthy capable Agent not yet tried for this shard; with `distinct_providers`
    (multi_node replicas) only from a provider that has no result for it yet, since two
    replicas of one provider are one vote. None when no such Agent is left."""
    candidates = [agent for agent in capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_assignable)
                  if agent.agent_id not in excluded_agents and not reliability[agent.agent_id].quarantined
                  and not (distinct_providers and agent.provider_id in excluded_providers)]
    return candidates[0] if candidates else None
