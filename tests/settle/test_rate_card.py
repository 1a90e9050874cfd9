"""Rate card loading: the packaged versions, immutability, and refusal of bad cards."""

from __future__ import annotations

import dataclasses
from importlib import resources

import pytest
import yaml

from forge_pipeline.canonical import digest
from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.request import profiles
from forge_pipeline.settle.rate_card import (VERIFICATION_MODES, RateCardInvalid, Unpriced, load_rate_card,
                                             rate_card_versions)

# The parsed content of each published card. A published card prices settled workloads,
# so it is never edited: a price change is a new file with a new version.
PUBLISHED_DIGESTS = {"2026-11-01": "fa8303c6d2d1e75c0899627d66c6036499e9eb6a766c5eef4fb4806cc575790a",
                     "2026-11-30": "93151ee90a484a3d4ac67bbf2c4349051d4a562231fdcbf7510aeeb9faa7d6ce"}

PRICED_PRIMITIVES = {
    "probabilistic_simulation/portfolio_loss@1", "graph_propagation/personalized_pagerank@1",
    "search_ranking/topk_similarity@1", "media_transformation/image_filter@1", "aggregation/grouped_sum@1",
    "memory_operations/sort_dedupe@1", "probabilistic_simulation/portfolio_loss@2",
    "graph_propagation/personalized_pagerank@2", "media_transformation/image_filter@2",
}

GOOD_CARD = """
version: "2030-01-01"
primitives:
  probabilistic_simulation/portfolio_loss@1:
    work_unit: draw
    ucr_per_million_units: {standard@1: 5}
verification_surcharge_bps: {none: 0, spot: 1, replay_sample: 2, multi_node: 3, aggregation_check: 4}
aggregation_ucr_per_shard: 1
artifact_ucr_per_kib: 1
retention: {ucr_per_kib_day: 1, days: {standard@1: 1}}
provider_share_bps: 8000
minimum_charge_ucr: 0
"""


def write_card(tmp_path, text):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    return path


def test_latest_card_is_default_and_every_version_loads_by_name():
    """load_rate_card() is the newest file, and each packaged version loads under its own name."""
    versions = rate_card_versions()
    assert versions == tuple(sorted(versions)) and "2026-11-01" in versions
    assert load_rate_card() == load_rate_card(versions[-1])
    for version in versions:
        assert load_rate_card(version).version == version


def test_published_cards_never_change():
    """Each published card's content still has its pinned digest (edit = new version, never in place)."""
    for version, expected in PUBLISHED_DIGESTS.items():
        text = resources.files("forge_pipeline.catalog").joinpath("rate_cards", f"{version}.yaml").read_text()
        assert digest(yaml.safe_load(text)) == expected, f"rate card {version} was edited: add a new version instead"
    assert set(PUBLISHED_DIGESTS) <= set(rate_card_versions())


def test_current_card_prices_every_primitive_profile_and_mode():
    """The current card prices every primitive version (@1 and the @2s) under every profile, every verification
    mode."""
    card = load_rate_card()
    assert set(card.work_unit_names) == PRICED_PRIMITIVES
    for primitive in PRICED_PRIMITIVES:
        for profile in profiles():
            assert card.unit_price(primitive, profile) > 0
            assert card.retention_days[profile] >= 0
    assert set(card.verification_surcharge_bps) == set(VERIFICATION_MODES)
    assert card.verification_surcharge_bps["none"] == 0
    assert 0 < card.provider_share_bps < 10_000


def test_card_work_units_match_the_registered_primitives():
    """A price is per unit of what the primitive counts: the card's unit name equals the primitive's."""
    card = load_rate_card()
    for name, primitive in PRIMITIVES.items():
        assert card.work_unit_names[name] == primitive.work_unit, name


def test_card_is_frozen():
    """A loaded card cannot be changed in memory (it is shared by every pricing call)."""
    card = load_rate_card()
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.provider_share_bps = 10_000
    with pytest.raises(TypeError):
        card.verification_surcharge_bps["none"] = 5


def test_unpriced_lookups_name_what_is_missing():
    """A primitive, profile or mode absent from the card raises Unpriced naming it and the version."""
    card = load_rate_card()
    with pytest.raises(Unpriced, match="no price for nope/none@1 with profile standard@1"):
        card.unit_price("nope/none@1", "standard@1")
    with pytest.raises(Unpriced, match="profile gold@1"):
        card.unit_price("probabilistic_simulation/portfolio_loss@1", "gold@1")
    with pytest.raises(Unpriced, match="'paranoid'"):
        card.surcharge_bps("paranoid")


def test_card_file_loads_through_a_path(tmp_path):
    """A valid card file loads through the path argument, integers intact."""
    card = load_rate_card(path=write_card(tmp_path, GOOD_CARD))
    assert card.version == "2030-01-01"
    assert card.unit_price("probabilistic_simulation/portfolio_loss@1", "standard@1") == 5
    assert card.surcharge_bps("aggregation_check") == 4


def test_bad_card_is_refused_with_every_problem_by_path(tmp_path):
    """Unknown fields, non-integers, bad names, out-of-range and missing values are all named at once."""
    text = (GOOD_CARD.replace("{standard@1: 5}", "{standard@1: 2.5, gold: 1}")
            .replace("provider_share_bps: 8000", "provider_share_bps: 12000\ndiscount_bps: 5")
            .replace("aggregation_ucr_per_shard: 1", 'aggregation_ucr_per_shard: "1"')
            .replace(" multi_node: 3,", "")
            .replace("minimum_charge_ucr: 0", "minimum_charge_ucr: true"))
    with pytest.raises(RateCardInvalid) as refused:
        load_rate_card(path=write_card(tmp_path, text))
    message = str(refused.value)
    for expected in (
        "primitives.probabilistic_simulation/portfolio_loss@1.ucr_per_million_units.standard@1: must be an integer, got number",
        "primitives.probabilistic_simulation/portfolio_loss@1.ucr_per_million_units.gold: must be a name like name@version",
        "provider_share_bps: must be <= 10000, got 12000",
        "discount_bps: unknown field",
        "aggregation_ucr_per_shard: must be an integer, got string",
        "verification_surcharge_bps.multi_node: is required",
        "minimum_charge_ucr: must be an integer, got boolean",
    ):
        assert expected in message, message
    assert len(refused.value.problems) == 7, message
    assert message.startswith(str(tmp_path))


def test_card_missing_retention_for_a_priced_profile_is_refused(tmp_path):
    """A profile that is priced but has no retention days would fail at pricing time: refused at load."""
    text = GOOD_CARD.replace("{standard@1: 5}", "{standard@1: 5, economy@1: 3}")
    with pytest.raises(RateCardInvalid, match=r"retention.days.economy@1: is required"):
        load_rate_card(path=write_card(tmp_path, text))


def test_duplicate_key_is_refused(tmp_path):
    """Two prices for one primitive must not silently keep the last one."""
    text = GOOD_CARD.replace("aggregation_ucr_per_shard: 1", "aggregation_ucr_per_shard: 1\naggregation_ucr_per_shard: 2")
    with pytest.raises(RateCardInvalid, match="duplicate key 'aggregation_ucr_per_shard'"):
        load_rate_card(path=write_card(tmp_path, text))


@pytest.mark.parametrize("text, expected", [
    ("[1, 2", "malformed JSON"),
    ("a: [1, 2\nb: c", "malformed YAML"),
    ("- a list", "(document): must be a mapping, got list"),
    (GOOD_CARD.replace('"2030-01-01"', "2030-13-45"), "version: must be a date YYYY-MM-DD, got '2030-13-45'"),
    (GOOD_CARD.replace('"2030-01-01"', '"latest"'), "version: must be a date YYYY-MM-DD"),
])
def test_malformed_card_is_refused(tmp_path, text, expected):
    """Broken JSON or YAML, a non-mapping document and a bad version (an unquoted date is read as its text, so an
    impossible date is refused by the version rule, not by a traceback) are refused, not half-loaded."""
    with pytest.raises(RateCardInvalid) as refused:
        load_rate_card(path=write_card(tmp_path, text))
    assert expected in str(refused.value)


def test_unknown_version_and_unreadable_path_are_refused(tmp_path):
    """A version that was never published, or a missing file, is an error, never a fallback to another card."""
    with pytest.raises(RateCardInvalid, match="no rate card '1999-01-01'"):
        load_rate_card("1999-01-01")
    with pytest.raises(RateCardInvalid, match="cannot read rate card"):
        load_rate_card(path=tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="not both"):
        load_rate_card("2026-11-01", path=tmp_path / "missing.yaml")
