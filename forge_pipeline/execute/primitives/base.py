"""What every primitive declares: schema, work unit, sharding, shard kernel, exact merge.

A primitive is named `family/name@version`; a version never changes its output. The
planner splits `item_count(arguments)` items into contiguous shards; `execute_shard`
computes one range with global indices (so shard layout cannot change a bit); `merge`
combines shard results in shard order, exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from forge_pipeline.execute.backend import Backend
from forge_pipeline.intake.problems import Problems


class Primitive(ABC):
    family: ClassVar[str]
    name: ClassVar[str]
    version: ClassVar[int]
    work_unit: ClassVar[str]  # what one billed unit is, e.g. "draw"
    item: ClassVar[str]  # what shard_size counts, e.g. "scenario"
    default_shard_size: ClassVar[int]
    contract: ClassVar[str]  # path of its contract document, relative to the repository

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.family}/{cls.name}@{cls.version}"

    @abstractmethod
    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        """Validate; return the canonical argument document (JSON types only) or None with problems recorded."""

    @abstractmethod
    def item_count(self, arguments: dict) -> int:
        """How many items the workload has; shards split [0, item_count)."""

    @abstractmethod
    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        """Billed units for items [start, stop)."""

    @abstractmethod
    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        """The shard kernel: a JSON-native result for items [start, stop)."""

    @abstractmethod
    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        """What a lazy Agent returns without doing the work: right shape, wrong numbers (fault drills)."""

    @abstractmethod
    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        """Exact merge of all shard results, in shard order, into the canonical output."""

    @abstractmethod
    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        """Cheap structural checks of one shard result (ranges, conservation); problems, empty when sound."""

    def write_artifacts(self, arguments: dict, seed: int, directory, output: dict) -> dict:
        """Files beside the evidence bundle (e.g. the filtered images); their facts go in the manifest.
        Most primitives' output is wholly in output.json, so the default writes nothing."""
        return {}

    @abstractmethod
    def benchmark_arguments(self, work_units: int) -> dict:
        """A valid argument document of about `work_units` units, for `make bench`."""

    @abstractmethod
    def output_summary(self, output: dict) -> dict[str, Any]:
        """A few readable facts and one markdown table for the Dagster UI."""
