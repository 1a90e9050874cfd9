"""The primitive registry: `family/name@version` -> implementation."""

from __future__ import annotations

from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss

PRIMITIVES: dict[str, Primitive] = {primitive.qualified_name(): primitive for primitive in (PortfolioLoss(),)}


def get_primitive(qualified_name: str) -> Primitive:
    return PRIMITIVES[qualified_name]
