import pytest

from benchmarks.api import bench_api


def test_bench_api_reports_both_loads_and_their_ratio(forge_home):
    """The API benchmark runs end to end on a few requests against a real `forge-pool serve`."""
    result = bench_api("sqlite", 40, concurrency=4)
    assert result["submit"]["per_s"] > 0 and result["healthz"]["per_s"] > 0
    assert result["submit"]["p50_ms"] <= result["submit"]["p99_ms"]
    assert result["throughput_ratio"] == pytest.approx(result["submit"]["per_s"] / result["healthz"]["per_s"],
                                                       abs=0.001)


def test_bench_api_refuses_an_unknown_database():
    """Only the embedded default and PostgreSQL are measured."""
    with pytest.raises(ValueError, match="sqlite or postgres"):
        bench_api("mysql", 10)
