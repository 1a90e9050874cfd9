"""Shard assignment: which Agents run which shard, grouped into one batch per Agent.

Capable Agents (capability, execution class, a visible device for `gpu`) that are not
quarantined share the shards greedily: each shard goes to the Agent with the least
queued work per unit of weight, weight = capacity × reliability score × 2 when the
Agent is in the request's region (`tags.region`), ties by Agent id. Deterministic for a
given pool, history and device visibility. With `multi_node`, each shard goes to
`replicas` Agents of distinct providers. Each quarantined Agent gets one probation shard.
One Dagster step runs one batch (DESIGN §2), never one shard.
"""

from __future__ import annotations

from fractions import Fraction

from forge_pipeline.assign.pool import Agent, Pool
from forge_pipeline.assign.reliability import Reliability
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.intake.problems import Problem, RequestInvalid

LOCALITY_BONUS = 2


class NoCapableAgent(RuntimeError):
    """No Agent in the pool can run this workload here: a typed reason to fail it."""


def capable_agents(pool: Pool, primitive_name: str, execution_class: str, gpu_visible: bool) -> list[Agent]:
    family = get_primitive(primitive_name).family
    agents = sorted(pool.eligible_agents(family, execution_class, gpu_visible), key=lambda agent: agent.agent_id)
    if not agents:
        where = "with a visible CUDA device" if gpu_visible else "without a CUDA device"
        raise NoCapableAgent(f"no Agent in {pool.source} can run {primitive_name} "
                             f"(execution class {execution_class}, {where})")
    return agents


def require_capable_pool(pool: Pool, document: dict) -> None:
    """At intake: refuse (RequestInvalid) a request no Agent of the pool could ever run, on any hardware."""
    try:
        capable_agents(pool, document["primitive"], document["policy"]["execution_class"], gpu_visible=True)
    except NoCapableAgent as error:
        raise RequestInvalid([Problem("primitive", str(error))]) from None


def assign_shards(plan: dict, pool: Pool, gpu_visible: bool, reliability: dict[str, Reliability],
                  region: str | None = None) -> dict:
    """{"batches": {agent_id: [shard indices]}, "probation": {agent_id: shard index}}."""
    agents = capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_visible)
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


def retry_agent(pool: Pool, plan: dict, gpu_visible: bool, reliability: dict[str, Reliability],
                excluded_agents: set[str], excluded_providers: set[str], distinct_providers: bool) -> Agent | None:
    """The first healthy capable Agent not yet tried for this shard; with `distinct_providers`
    (multi_node replicas) only from a provider that has no result for it yet, since two
    replicas of one provider are one vote. None when no such Agent is left."""
    candidates = [agent for agent in capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_visible)
                  if agent.agent_id not in excluded_agents and not reliability[agent.agent_id].quarantined
                  and not (distinct_providers and agent.provider_id in excluded_providers)]
    return candidates[0] if candidates else None
