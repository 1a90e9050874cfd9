"""The Dagster-free report builders: exact credits, total rows, a workload's money, pictures as PNG."""

import io

import matplotlib.image
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from forge_pipeline.report.money import components_table, credits_text, split_table, usage_money, with_total
from forge_pipeline.report.pictures import amounts_by, workload_picture
from forge_pipeline.storage.database import open_engine
from tests.money.workloads import corrupt_pool, finalize

ONE = 1 << 32


def pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")


@pytest.mark.parametrize("amount_ucr, text", [(0, "0.000000"), (1, "0.000001"), (1_234_567, "1.234567"),
                                              (-5, "-0.000005"), (12_345_000_000_001, "12,345,000.000001")])
def test_credits_are_exact_decimal_text_of_integer_micro_credits(amount_ucr, text):
    """credits_text divides by 10^6 with integers: no float rounding at any size, sign kept."""
    assert credits_text(amount_ucr) == text


def test_a_total_row_sums_every_integer_column_and_credits_sit_beside_micro_credits():
    """with_total appends TOTAL (other text columns empty), sums counts and µcr, adds *_credits after *_ucr."""
    table = pl.LazyFrame({"organization": ["acme", "zeta"], "project": ["risk", "ops"], "workloads": [2, 1],
                          "charge_ucr": [1_500_000, 250]})
    expected = pl.DataFrame({"organization": ["acme", "zeta", "TOTAL"], "project": ["risk", "ops", None],
                             "workloads": [2, 1, 3], "charge_ucr": [1_500_000, 250, 1_500_250],
                             "charge_credits": ["1.500000", "0.000250", "1.500250"]})
    assert_frame_equal(with_total(table, "organization").collect(), expected)
    with pytest.raises(TypeError, match="workloads must be a text column"):
        with_total(table, "workloads")


def test_a_usage_records_money_splits_exactly_into_payouts_and_fee(forge_home):
    """usage_money on a real finalized workload with a rejected provider: components sum to the charge,
    payouts + fee equal the charge, the rejected provider is paid nothing, rejected work is nonbillable,
    and the split and components tables end in a TOTAL row equal to the charge."""
    record = finalize(open_engine(), corrupt_pool(),
                      policy={"verification": "replay_sample", "sample_rate": "1"})
    money = usage_money(record)
    assert sum(money["components_ucr"].values()) == money["charge_ucr"] == record["charge_ucr"] > 0
    assert sum(money["payouts_ucr"].values()) + money["platform_fee_ucr"] == money["charge_ucr"]
    assert "liar" not in money["payouts_ucr"] and money["payouts_ucr"]["honest"] > 0
    assert money["nonbillable_ucr"] > 0 and money["rate_card_version"] == record["rate_card_version"]
    split = split_table(money).collect()
    assert split["party"].to_list() == ["provider:honest", "platform:fee", "TOTAL"]
    assert split["amount_ucr"][-1] == record["charge_ucr"] == components_table(money).collect()["amount_ucr"][-1]


def test_loss_distribution_picture_is_a_png_of_the_histogram():
    """portfolio_loss draws a PNG; an empty histogram draws too (every loss in bin 0)."""
    arguments = {"obligors": [{"exposure": 500, "pd": "0.05"}, {"exposure": 300, "pd": "0.1"}]}
    output = {"scenarios": 10, "histogram": [6, 3, 1], "value_at_risk": {"0.9": 500},
              "expected_shortfall": {"0.9": {"tail_sum": 1300, "tail_count": 2}}}
    picture = workload_picture("probabilistic_simulation/portfolio_loss@1", arguments, output, None)
    assert pixels(picture).shape[0] > 100


def test_loss_distribution_picture_draws_the_v2_expected_shortfall_fraction():
    """portfolio_loss@2 reports ES as an exact fraction (numerator, denominator), not a tail sum: it draws too
    (the demo's workloads once stranded in Aggregating on the @1 keys)."""
    arguments = {"obligors": [{"exposure": 500, "pd": "0.05"}, {"exposure": 300, "pd": "0.1"}]}
    output = {"scenarios": 10, "histogram": [6, 3, 1], "value_at_risk": {"0.9": 500},
              "expected_shortfall": {"0.9": {"numerator": 1300, "denominator": 2}}}
    picture = workload_picture("probabilistic_simulation/portfolio_loss@2", arguments, output, None)
    assert pixels(picture).shape[0] > 100


def test_contact_sheet_shows_the_filtered_images(tmp_path):
    """image_filter's picture is drawn from images.npy: white images make a brighter sheet than black ones."""
    brightness = []
    for value in (0, 255):
        folder = tmp_path / str(value)
        folder.mkdir()
        np.save(folder / "images.npy", np.full((20, 16, 16), value, dtype=np.uint8))
        sheet = pixels(workload_picture("media_transformation/image_filter@1", {}, {}, folder))
        brightness.append(sheet[..., :3].mean())
    assert brightness[1] - brightness[0] > 0.2


def test_pagerank_picture_and_families_without_a_picture():
    """personalized_pagerank draws score against in-degree; a family whose output is a table has no picture."""
    arguments = {"nodes": 4, "edges": [[0, 1], [1, 2], [2, 0], [3, 0]]}
    output = {"sources": 1, "score_scale": ONE, "results": [{"source": 0, "top": [[0, ONE // 2], [1, ONE // 4]]}]}
    assert pixels(workload_picture("graph_propagation/personalized_pagerank@1", arguments, output, None)).size
    assert workload_picture("aggregation/grouped_sum@1", {}, {}, None) is None


def test_amount_bars_draw_one_bar_per_row():
    """The settlement picture is a PNG whose height grows with the number of rows."""
    small = pixels(amounts_by(["acme"], [1_000_000], "charges", "#66c2a5"))
    large = pixels(amounts_by([f"org-{i}" for i in range(12)], list(range(12)), "charges", "#66c2a5"))
    assert large.shape[0] > small.shape[0]
