"""Deterministic planning: shards, their index ranges, the verification policy, the seed.

The plan depends only on the request and its seed, never on the pool or the hardware,
so its digest reproduces on replay anywhere. Assignment to Agents is separate
(`forge_pipeline.assign.assignment`).
"""

from __future__ import annotations

import hashlib

from forge_pipeline.canonical import digest
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.intake.problems import Problem, RequestInvalid

MAX_SHARDS = 100_000
PLAN_VERSION = 1


def sample_score(seed: int, shard_index: int, purpose: str) -> int:
    """A uint64 drawn from (seed, shard, purpose): the same on every machine and replay."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{shard_index}:{purpose}".encode()).digest()[:8], "big")


def build_plan(document: dict, seed: int) -> dict:
    primitive = get_primitive(document["primitive"])
    arguments = document["arguments"]
    policy = document["policy"]
    items = primitive.item_count(arguments)
    shard_size = policy["shard_size"]
    shard_count = -(-items // shard_size)
    if shard_count > MAX_SHARDS:
        raise RequestInvalid([Problem("policy.shard_size",
                                      f"{shard_size} gives {shard_count} shards; at most {MAX_SHARDS} are planned")])
    shards = []
    for index in range(shard_count):
        start, stop = index * shard_size, min(items, (index + 1) * shard_size)
        shards.append({"index": index, "start": start, "stop": stop,
                       "work_units": primitive.work_units(arguments, start, stop)})
    verification = {"mode": policy["verification"], "sample_rate": policy["sample_rate"],
                    "replicas": policy["replicas"]}
    plan = {
        "plan_version": PLAN_VERSION,
        "primitive": document["primitive"],
        "arguments_digest": digest(arguments),
        "seed": seed,
        "item": primitive.item,
        "items": items,
        "shard_size": shard_size,
        "shards": shards,
        "work_units": sum(shard["work_units"] for shard in shards),
        "verification": verification,
        "execution_class": policy["execution_class"],
    }
    return {**plan, "plan_digest": digest(plan)}
