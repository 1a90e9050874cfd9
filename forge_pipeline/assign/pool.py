"""The Agent pool file (DESIGN §3.8): providers, their Agents, hardware, capabilities, faults.

Unknown fields, duplicate ids and bad values are refused with field paths. A `gpu`
Agent takes work only where a CUDA device is visible; `eligible_agents` applies that
rule, the request's execution class and the Agent's capabilities.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.problems import Problem, Problems, RequestInvalid, join

HARDWARE_CLASSES = ("gpu", "cpu")
FAULT_KINDS = ("crash", "timeout", "corrupt", "lazy", "slow")
FAMILIES = tuple(sorted({primitive.family for primitive in PRIMITIVES.values()}))
MAX_CAPACITY = 64
# The platform's own parties: a provider or Agent of these names would be paid, or judged, as the hub.
RESERVED_PROVIDERS = frozenset({"platform"})
RESERVED_AGENTS = frozenset({"hub", "replay"})


@dataclass(frozen=True)
class Fault:
    kind: str
    rate: str  # exact decimal text; an attempt is faulty when its hash falls below it


@dataclass(frozen=True)
class Agent:
    agent_id: str
    provider_id: str
    hardware: str
    capabilities: tuple[str, ...]
    region: str
    capacity: int
    fault: Fault | None = None

    @property
    def step_key(self) -> str:
        """Dagster mapping keys must match [A-Za-z0-9_]+ (DESIGN §5)."""
        return re.sub(r"[^A-Za-z0-9_]", "_", self.agent_id)


@dataclass(frozen=True)
class Pool:
    agents: tuple[Agent, ...]
    source: str = "(built-in)"

    def agent(self, agent_id: str) -> Agent:
        for agent in self.agents:
            if agent.agent_id == agent_id:
                return agent
        raise KeyError(agent_id)

    def eligible_agents(self, family: str, execution_class: str, gpu_assignable: bool) -> list[Agent]:
        return [agent for agent in self.agents
                if family in agent.capabilities
                and (agent.hardware == "cpu" or gpu_assignable)
                and execution_class in ("any", agent.hardware)]


def load_pool(path: str | os.PathLike | None = None) -> Pool:
    path = path or os.environ.get("FORGE_POOL_FILE")
    if path:
        source = str(path)
        try:
            text = Path(path).read_bytes()
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
            reason = getattr(error, "strerror", None) or error
            raise RequestInvalid([Problem(source, f"cannot read pool file: {reason}")]) from None
    else:
        source, text = "(built-in pool)", resources.files("forge_pipeline.catalog").joinpath("pool.yaml").read_bytes()
    try:
        document = load_document(text, source)
    except RequestInvalid as error:
        raise error.within(source) from None
    return parse_pool(document, source)


def parse_pool(document: object, source: str = "(pool)") -> Pool:
    problems = Problems()
    root = problems.mapping(document, "", {"providers"}, set())
    agents: list[Agent] = []
    provider_ids: list[str] = []
    providers = problems.list(root.get("providers"), "providers", 1, 1000) if root and "providers" in root else None
    seen_agents: set[str] = set()
    step_keys: dict[str, str] = {}
    for index, provider in enumerate(providers or []):
        path = join("providers", index)
        if problems.mapping(provider, path, {"id", "agents"}, set()) is None:
            continue
        provider_id = problems.identifier(provider.get("id"), join(path, "id"))
        if provider_id in RESERVED_PROVIDERS:
            problems.add(join(path, "id"), f"{provider_id!r} is reserved for the platform")
        if provider_id in provider_ids:
            problems.add(join(path, "id"), f"duplicate provider id {provider_id!r}")
        provider_ids.append(provider_id)
        for agent_index, agent in enumerate(problems.list(provider.get("agents"), join(path, "agents"), 1, 1000) or []):
            parsed = _agent(agent, join(join(path, "agents"), agent_index), provider_id, problems)
            if parsed is None:
                continue
            agent_path = join(join(path, "agents"), agent_index) + ".id"
            if parsed.agent_id in seen_agents:
                problems.add(agent_path, f"duplicate agent id {parsed.agent_id!r}")
            elif parsed.agent_id in RESERVED_AGENTS:
                problems.add(agent_path, f"{parsed.agent_id!r} is reserved for the platform")
            elif parsed.step_key in step_keys:
                problems.add(agent_path, f"{parsed.agent_id!r} and {step_keys[parsed.step_key]!r} differ only in "
                                         "'-', '.' or '_', which Dagster step keys cannot tell apart")
            seen_agents.add(parsed.agent_id)
            step_keys.setdefault(parsed.step_key, parsed.agent_id)
            agents.append(parsed)
    if problems.found:
        raise RequestInvalid(problems.found).within(source)
    return Pool(agents=tuple(agents), source=source)


def _agent(agent: object, path: str, provider_id: str | None, problems: Problems) -> Agent | None:
    optional = {"capabilities", "region", "capacity", "fault"}
    if problems.mapping(agent, path, {"id", "hardware"}, optional) is None:
        return None
    found_before = len(problems.found)
    agent_id = problems.identifier(agent.get("id"), join(path, "id"))
    hardware = problems.string(agent.get("hardware"), join(path, "hardware"), HARDWARE_CLASSES)
    capabilities = agent.get("capabilities", list(FAMILIES))
    if problems.list(capabilities, join(path, "capabilities"), 1, 64) is not None:
        for index, family in enumerate(capabilities):
            problems.string(family, join(join(path, "capabilities"), index), FAMILIES)
    region = problems.identifier(agent.get("region", "local"), join(path, "region"))
    capacity = problems.integer(agent.get("capacity", 1), join(path, "capacity"), 1, MAX_CAPACITY)
    fault = None
    if "fault" in agent:
        fault_path = join(path, "fault")
        if problems.mapping(agent["fault"], fault_path, {"kind"}, {"rate"}) is not None:
            kind = problems.string(agent["fault"].get("kind"), join(fault_path, "kind"), FAULT_KINDS)
            rate = problems.decimal(agent["fault"].get("rate", 1), join(fault_path, "rate"), Fraction(0), Fraction(1))
            if rate is not None and kind:
                fault = Fault(kind, rate)
    if len(problems.found) > found_before or provider_id is None:
        return None
    return Agent(agent_id, provider_id, hardware, tuple(capabilities), region, capacity, fault)
