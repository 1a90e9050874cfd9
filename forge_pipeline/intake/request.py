"""Workload requests (DESIGN §3.1): validate every field by path, resolve the policy.

`validate_request` takes a document parsed by `forge_pipeline.intake.documents` (or built in
Python, held to the same limits) and returns a `WorkloadRequest` whose `document` is
canonical: identifiers checked whole, decimals in canonical form, the profile's defaults
resolved into `policy`, arguments normalized by their primitive (input files confined to the
organization's input area), the profile's work-unit limit applied, and nothing unknown
kept. Invalid input raises `RequestInvalid` with every problem; nothing is stored by this
module (admission stores: `forge_pipeline.intake.admission`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from typing import Any

from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.documents import check_limits, load_document
from forge_pipeline.intake.inputs import input_area
from forge_pipeline.intake.limits import MAX_TAG_VALUE_CHARS, MAX_TAGS
from forge_pipeline.intake.problems import Problems, join

IDENTIFIER_FIELDS = ("request_id", "organization", "project", "workspace", "adapter")
VERIFICATION_MODES = ("none", "spot", "replay_sample", "multi_node", "aggregation_check")
MAX_REPLICAS = 5
EXECUTION_CLASSES = ("any", "gpu", "cpu")
UINT64_MAX = (1 << 64) - 1
REQUIRED_FIELDS = {"request_id", "organization", "project", "workspace", "adapter", "primitive", "profile", "arguments"}
OPTIONAL_FIELDS = {"policy", "replay", "tags"}
POLICY_FIELDS = {"verification", "sample_rate", "execution_class", "max_credits_ucr", "shard_size", "replicas",
                 "wall_time_limit_s"}
MAX_WALL_TIME_LIMIT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class WorkloadRequest:
    workload_id: str
    document: dict  # canonical request: resolved policy, normalized arguments, seed present when given

    @property
    def primitive(self) -> str:
        return self.document["primitive"]


@lru_cache(maxsize=1)
def profiles() -> dict[str, dict]:
    """The execution profiles: policy defaults, and `max_work_units`, the most one request may ask for."""
    return load_document(resources.files("forge_pipeline.catalog").joinpath("profiles.yaml").read_bytes(),
                         "profiles.yaml")


def workload_id_for(organization: str, request_id: str) -> str:
    """Deterministic: the same (organization, request_id) is always the same workload."""
    return "wl_" + hashlib.sha256(f"{organization}\x00{request_id}".encode()).hexdigest()[:20]


def validate_request(document: Any) -> WorkloadRequest:
    """Validate a parsed request (`load_document`, or a document built in Python, which is held to the
    same limits) into its canonical form; raises RequestInvalid with every problem by field path."""
    check_limits(document)
    problems = Problems()
    request = problems.mapping(document, "", REQUIRED_FIELDS, OPTIONAL_FIELDS)
    problems.raise_if_any()
    identifiers = {field: problems.identifier(request[field], field) for field in IDENTIFIER_FIELDS if field in request}
    if identifiers.get("organization"):
        problems.input_area = input_area(identifiers["organization"])
    primitive = _primitive(request, problems)
    profile = _profile(request, problems)
    arguments = primitive.normalize_arguments(request["arguments"], problems) if primitive and "arguments" in request else None
    policy = _policy(request.get("policy", {}), profile, primitive, problems)
    replay = _replay(request.get("replay", {}), problems)
    tags = _tags(request.get("tags", {}), problems)
    if arguments is not None and policy is not None and profile is not None:
        _within_work_unit_limit(primitive, arguments, profile, problems)
    problems.raise_if_any()
    canonical = {
        "request_id": request["request_id"],
        "organization": request["organization"],
        "project": request["project"],
        "workspace": request["workspace"],
        "adapter": request["adapter"],
        "primitive": request["primitive"],
        "profile": request["profile"],
        "policy": policy,
        "arguments": arguments,
        "replay": replay,
        "tags": tags,
    }
    return WorkloadRequest(workload_id_for(canonical["organization"], canonical["request_id"]), canonical)


def _primitive(request: dict, problems: Problems):
    name = problems.string(request.get("primitive"), "primitive") if "primitive" in request else None
    if name is None:
        return None
    if name not in PRIMITIVES:
        known = ", ".join(sorted(PRIMITIVES))
        problems.add("primitive", f"unknown primitive or version {name!r} (known: {known})")
        return None
    return PRIMITIVES[name]


def _profile(request: dict, problems: Problems) -> dict | None:
    name = problems.string(request.get("profile"), "profile") if "profile" in request else None
    if name is None:
        return None
    if name not in profiles():
        problems.add("profile", f"unknown profile {name!r} (known: {', '.join(sorted(profiles()))})")
        return None
    return profiles()[name]


def _policy(policy: Any, profile: dict | None, primitive, problems: Problems) -> dict | None:
    if problems.mapping(policy, "policy", set(), POLICY_FIELDS) is None or profile is None:
        return None
    resolved = {**profile, **policy}
    verification = problems.string(resolved["verification"], "policy.verification", VERIFICATION_MODES)
    rate = problems.decimal(resolved["sample_rate"], "policy.sample_rate", Fraction(0), Fraction(1))
    execution_class = problems.string(resolved["execution_class"], "policy.execution_class", EXECUTION_CLASSES)
    max_credits = resolved.get("max_credits_ucr")  # null: no cap
    if max_credits is not None:
        max_credits = problems.integer(max_credits, "policy.max_credits_ucr", 0, (1 << 63) - 1)
    shard_size = None
    if "shard_size" in resolved or primitive is not None:  # given, null included, or the primitive's default
        shard_size = problems.integer(resolved.get("shard_size", primitive and primitive.default_shard_size),
                                      "policy.shard_size", 1, 10**12)
    replicas = resolved.get("replicas", 2 if verification == "multi_node" else 1)
    if verification == "multi_node":
        replicas = problems.integer(replicas, "policy.replicas", 2, MAX_REPLICAS)
    elif type(replicas) is not int or replicas != 1:
        problems.add("policy.replicas", "applies only with verification multi_node (else it is 1)")
        replicas = None
    wall_time_limit = resolved.get("wall_time_limit_s")
    if wall_time_limit is not None:
        wall_time_limit = problems.integer(wall_time_limit, "policy.wall_time_limit_s", 1, MAX_WALL_TIME_LIMIT_S)
    if None in (verification, rate, execution_class, shard_size, replicas):
        return None
    # The wall-time limit appears only when set, so requests without one keep their canonical form.
    return {
        "verification": verification,
        "sample_rate": rate,
        "execution_class": execution_class,
        "max_credits_ucr": max_credits,
        "shard_size": shard_size,
        "replicas": replicas,
        **({"wall_time_limit_s": wall_time_limit} if wall_time_limit is not None else {}),
    }


def _within_work_unit_limit(primitive, arguments: dict, profile: dict, problems: Problems) -> None:
    """The profile's `max_work_units` bounds one request, before it is stored or planned."""
    units = primitive.work_units(arguments, 0, primitive.item_count(arguments))
    if units > profile["max_work_units"]:
        problems.add("arguments", f"{units} {primitive.work_unit}s; profile allows at most "
                                  f"{profile['max_work_units']} work units per request")


def _replay(replay: Any, problems: Problems) -> dict:
    if problems.mapping(replay, "replay", set(), {"seed"}) is None:
        return {}
    if "seed" not in replay:
        return {}
    seed = problems.integer(replay["seed"], "replay.seed", 0, UINT64_MAX)
    return {} if seed is None else {"seed": seed}


def _tags(tags: Any, problems: Problems) -> dict:
    """Tag keys are identifiers; tag values are printable text (no control characters)."""
    if problems.mapping(tags, "tags", set(), set(tags) if isinstance(tags, dict) else set()) is None:
        return {}
    if len(tags) > MAX_TAGS:
        problems.add("tags", f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if problems.identifier(key, join("tags", str(key))) is not None:
            problems.text(value, join("tags", key), MAX_TAG_VALUE_CHARS)
    return dict(tags)
