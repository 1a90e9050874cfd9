"""Exact canonical decimals: what is written is what is stored, compared and computed with."""

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forge_pipeline.assign.pool import load_pool
from forge_pipeline.intake.admission import RequestIdConflict, admit_requests
from forge_pipeline.intake.decimals import DecimalRefused, canonical_decimal
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.request import validate_request
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import load_workload
from tests.lifecycle.requests import request

# 41 significant digits: a 28-digit context would round this to 0.1000000000000000000000000000.
PD_41_DIGITS = "0.10000000000000000000000000000000000000001"


def pd_request(pd, request_id="t-001") -> str:
    return json.dumps(request(request_id=request_id, arguments={"obligors": [{"exposure": 5, "pd": pd}]}))


@pytest.mark.parametrize("written, canonical", [
    ("0.10", "0.1"), ("-0", "0"), ("0.0", "0"), ("-0.000e7", "0"), ("+1.50", "1.5"), ("1e-5", "0.00001"),
    ("2.5E+3", "2500"), (".5", "0.5"), ("5.", "5"), ("100", "100"), ("-0.0010", "-0.001"),
    (PD_41_DIGITS, PD_41_DIGITS), ("1e-64", "0." + "0" * 63 + "1"),
])
def test_canonical_text_of_decimals(written, canonical):
    """The documented canonical form: positional, no sign on zero, no trailing zeros, exact at any digit count."""
    assert canonical_decimal(written) == canonical
    assert Fraction(canonical) == Fraction(Decimal(written))  # Decimal(text) itself is exact; only arithmetic rounds


@pytest.mark.parametrize("written", ["٠.٥", "1e-65", "1.5e-64", "1e64", "1e999999999", "1" * 65, "0x10", "1_000", " 1",
                                     "1 ", "nan",
                                     "inf", "", ".", "e5", "1e", "--1"])
def test_refused_decimals(written):
    """Other scripts' digits, exponents and digit counts past the limits, and non-decimal forms are refused."""
    with pytest.raises(DecimalRefused):
        canonical_decimal(written)


@settings(max_examples=500, derandomize=True, database=None)
@given(st.from_regex(r"[+-]?[0-9]{0,40}(\.[0-9]{0,40})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
def test_canonical_text_reads_back_as_itself(written):
    """Canonicalization is idempotent and exact: an accepted decimal's canonical text is accepted as itself and has
    the same value (500 generated decimals per run)."""
    try:
        canonical = canonical_decimal(written)
    except DecimalRefused:
        return
    assert canonical_decimal(canonical) == canonical
    assert Fraction(canonical) == Fraction(Decimal(written))


def test_stored_pd_equals_the_written_pd(forge_home):
    """A pd with 41 significant digits is stored as written, and its threshold is computed from exactly that."""
    [(workload_id, _)] = admit_requests([("r.json", pd_request(PD_41_DIGITS))], load_pool(), open_engine)
    stored = load_workload(open_engine(), workload_id)["request"]["arguments"]["obligors"][0]["pd"]
    assert stored == PD_41_DIGITS


def test_requests_differing_beyond_the_28th_digit_are_different(forge_home):
    """Two requests that differ only in the 41st significant digit are different documents: the second is refused."""
    admit_requests([("a.json", pd_request(PD_41_DIGITS))], load_pool(), open_engine)
    with pytest.raises(RequestIdConflict) as conflict:
        admit_requests([("b.json", pd_request("0.1"))], load_pool(), open_engine)
    assert conflict.value.problems[0].path == "b.json: request_id"


def test_zero_minus_zero_and_zero_point_zero_are_the_same_request(forge_home):
    """`0`, `-0` and `0.0` are one canonical document: resubmitting with another spelling is the same workload."""
    outcomes = [admit_requests([(f"{pd}.json", pd_request(pd))], load_pool(), open_engine)[0]
                for pd in ("0", "-0", "0.0", 0)]
    assert len({workload_id for workload_id, _ in outcomes}) == 1
    assert [created for _, created in outcomes] == [True, False, False, False]


def test_json_and_yaml_numbers_are_read_from_their_text():
    """A JSON or YAML number literal keeps its digits (no float on the way): 41 digits survive either format."""
    from_json = validate_request(load_document(pd_request(None).replace("null", PD_41_DIGITS)))
    assert from_json.document["arguments"]["obligors"][0]["pd"] == PD_41_DIGITS
    yaml_text = f"pd: {PD_41_DIGITS}\n"
    assert str(load_document(yaml_text)["pd"]) == PD_41_DIGITS


def test_a_tiny_quantile_is_kept_exactly():
    """A quantile too small for a float or a 28-digit context is stored exactly, never as "0"."""
    quantile = "0.0000000000000000000000000000000000001"
    document = validate_request(request(arguments={"quantiles": [quantile, "0.5"]})).document
    assert document["arguments"]["quantiles"][0] == quantile
