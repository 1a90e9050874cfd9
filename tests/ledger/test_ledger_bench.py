import pytest

from benchmarks.ledger import bench_posting


def test_bench_posting_reports_both_rates():
    """The posting benchmark runs end to end on a small ledger and reports both rates and their ratio."""
    result = bench_posting(400)
    assert result["entries"] == 400
    assert result["ledger_entries_per_second"] > 0 and result["raw_entries_per_second"] > 0
    assert result["ledger_to_raw_ratio"] == pytest.approx(
        result["ledger_entries_per_second"] / result["raw_entries_per_second"], rel=0.01)


def test_bench_posting_refuses_an_odd_count():
    """Two entries per transaction: an odd entry count is refused rather than rounded."""
    with pytest.raises(ValueError, match="even"):
        bench_posting(3)
