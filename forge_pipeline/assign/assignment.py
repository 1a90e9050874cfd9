"""Shard assignment: which Agent runs which shard, grouped into one batch per Agent.

Deterministic for a given pool and device visibility: eligible Agents are ordered by id
and each takes shards in proportion to its capacity (a weighted round robin). One
Dagster step runs one batch (DESIGN §2), never one shard.
"""

from __future__ import annotations

from forge_pipeline.assign.pool import Agent, Pool
from forge_pipeline.execute.primitives import get_primitive


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


def assign_shards(plan: dict, pool: Pool, gpu_visible: bool) -> dict[str, list[int]]:
    """{agent_id: [shard indices]} for every shard of the plan."""
    agents = capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_visible)
    slots = [agent.agent_id for agent in agents for _ in range(agent.capacity)]
    batches: dict[str, list[int]] = {}
    for shard in plan["shards"]:
        batches.setdefault(slots[shard["index"] % len(slots)], []).append(shard["index"])
    return batches


def retry_agent(pool: Pool, plan: dict, gpu_visible: bool, excluded: set[str]) -> Agent | None:
    """The first capable Agent that has not yet failed this shard, or None when none is left."""
    for agent in capable_agents(pool, plan["primitive"], plan["execution_class"], gpu_visible):
        if agent.agent_id not in excluded:
            return agent
    return None
