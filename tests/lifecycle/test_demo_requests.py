"""The demo's sample requests: valid, and on the newest version of each primitive they use."""

from forge_pipeline.assign.pool import load_pool
from forge_pipeline.cli import demo_requests
from forge_pipeline.intake.admission import read_request
from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.settle.rate_card import load_rate_card


def test_demo_requests_validate_and_use_the_newest_primitive_versions():
    """Every demo request validates, names the highest registered version of its primitive (so the @2 fixes are
    what a new user sees) and is priced by the current rate card."""
    newest: dict[str, int] = {}
    for primitive in PRIMITIVES.values():
        family_name = f"{primitive.family}/{primitive.name}"
        newest[family_name] = max(newest.get(family_name, 0), primitive.version)
    pool = load_pool()
    requests = [read_request(path.read_bytes(), pool, source=str(path)) for path in demo_requests()]
    card = load_rate_card()
    used = {request.document["primitive"] for request in requests}
    assert used == {f"{family_name}@{version}" for family_name, version in newest.items()}
    for request in requests:
        assert card.unit_price(request.document["primitive"], request.document["profile"]) > 0
