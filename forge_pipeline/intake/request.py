"""Workload requests (DESIGN §3.1): parse, validate every field by path, resolve the policy.

`validate_request` returns a `WorkloadRequest` whose `document` is canonical: the
profile's defaults are resolved into `policy`, arguments are normalized by their
primitive, and nothing unknown survives. Invalid input raises `RequestInvalid` with
every problem; nothing is stored by this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.problems import Problem, Problems, RequestInvalid, decimal_text, join

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
VERIFICATION_MODES = ("none", "spot", "replay_sample", "multi_node", "aggregation_check")
MAX_REPLICAS = 5
EXECUTION_CLASSES = ("any", "gpu", "cpu")
MAX_DOCUMENT_BYTES = 8 << 20
MAX_TAGS = 32
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
    text = resources.files("forge_pipeline.catalog").joinpath("profiles.yaml").read_text()
    return yaml.safe_load(text)


def workload_id_for(organization: str, request_id: str) -> str:
    """Deterministic: the same (organization, request_id) is always the same workload."""
    return "wl_" + hashlib.sha256(f"{organization}\x00{request_id}".encode()).hexdigest()[:20]


def parse_document(text: str | bytes, source: str = "(document)") -> Any:
    """JSON or YAML (JSON is YAML); a syntax error is one problem naming the line."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise RequestInvalid([Problem(source, f"larger than {MAX_DOCUMENT_BYTES} bytes")])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestInvalid([Problem(source, f"not UTF-8 text ({error.reason})")]) from None
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise RequestInvalid([Problem(source, f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}")]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise RequestInvalid([Problem(source, f"malformed YAML{where}: {reason}")]) from None


def validate_request(document: Any) -> WorkloadRequest:
    problems = Problems()
    request = problems.mapping(document, "", REQUIRED_FIELDS, OPTIONAL_FIELDS)
    problems.raise_if_any()
    for field in ("request_id", "organization", "project", "workspace", "adapter"):
        if field in request:
            value = problems.string(request[field], field, max_length=128)
            if value is not None and not IDENTIFIER.match(value):
                problems.add(field, "must start with a letter or digit and use only letters, digits and _ . : -")
    primitive = _primitive(request, problems)
    profile = _profile(request, problems)
    arguments = primitive.normalize_arguments(request["arguments"], problems) if primitive and "arguments" in request else None
    policy = _policy(request.get("policy", {}), profile, primitive, problems)
    replay = _replay(request.get("replay", {}), problems)
    tags = _tags(request.get("tags", {}), problems)
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
    rate = problems.fraction(resolved["sample_rate"], "policy.sample_rate", Fraction(0), Fraction(1))
    execution_class = problems.string(resolved["execution_class"], "policy.execution_class", EXECUTION_CLASSES)
    max_credits = resolved.get("max_credits_ucr")
    if max_credits is not None:
        max_credits = problems.integer(max_credits, "policy.max_credits_ucr", 0, (1 << 63) - 1)
    shard_size = resolved.get("shard_size", primitive.default_shard_size if primitive else None)
    if shard_size is not None:
        shard_size = problems.integer(shard_size, "policy.shard_size", 1, 10**12)
    replicas = resolved.get("replicas", 2 if verification == "multi_node" else 1)
    if verification != "multi_node" and replicas != 1:
        problems.add("policy.replicas", "applies only with verification multi_node")
        replicas = None
    elif verification == "multi_node":
        replicas = problems.integer(replicas, "policy.replicas", 2, MAX_REPLICAS)
    wall_time_limit = resolved.get("wall_time_limit_s")
    if wall_time_limit is not None:
        wall_time_limit = problems.integer(wall_time_limit, "policy.wall_time_limit_s", 1, MAX_WALL_TIME_LIMIT_S)
        if wall_time_limit is None:
            return None
    if None in (verification, rate, execution_class, shard_size, replicas):
        return None
    # The wall-time limit appears only when set, so requests without one keep their canonical form.
    return {
        "verification": verification,
        "sample_rate": decimal_text(resolved["sample_rate"]),
        "execution_class": execution_class,
        "max_credits_ucr": max_credits,
        "shard_size": shard_size,
        "replicas": replicas,
        **({"wall_time_limit_s": wall_time_limit} if wall_time_limit is not None else {}),
    }


def _replay(replay: Any, problems: Problems) -> dict:
    if problems.mapping(replay, "replay", set(), {"seed"}) is None:
        return {}
    if "seed" not in replay:
        return {}
    seed = problems.integer(replay["seed"], "replay.seed", 0, UINT64_MAX)
    return {} if seed is None else {"seed": seed}


def _tags(tags: Any, problems: Problems) -> dict:
    if problems.mapping(tags, "tags", set(), set(tags) if isinstance(tags, dict) else set()) is None:
        return {}
    if len(tags) > MAX_TAGS:
        problems.add("tags", f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not isinstance(key, str) or not IDENTIFIER.match(key):
            problems.add(join("tags", str(key)), "tag names use letters, digits and _ . : -")
        elif not isinstance(value, str) or len(value) > 256:
            problems.add(join("tags", key), "tag values are strings of at most 256 characters")
    return dict(tags)
