"""The primitive registry: `family/name@version` -> implementation."""

from __future__ import annotations

from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.grouped_sum import GroupedSum
from forge_pipeline.execute.primitives.image_filter import ImageFilter, ImageFilterV2
from forge_pipeline.execute.primitives.personalized_pagerank import PersonalizedPagerank, PersonalizedPagerankV2
from forge_pipeline.execute.primitives.portfolio_loss import PortfolioLoss, PortfolioLossV2
from forge_pipeline.execute.primitives.sort_dedupe import SortDedupe
from forge_pipeline.execute.primitives.topk_similarity import TopkSimilarity

PRIMITIVES: dict[str, Primitive] = {primitive.qualified_name(): primitive for primitive in (
    PortfolioLoss(), PersonalizedPagerank(), TopkSimilarity(), ImageFilter(), GroupedSum(), SortDedupe(),
    PortfolioLossV2(), PersonalizedPagerankV2(), ImageFilterV2())}


def get_primitive(qualified_name: str) -> Primitive:
    return PRIMITIVES[qualified_name]
