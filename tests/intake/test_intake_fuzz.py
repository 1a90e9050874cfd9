"""Property-based fuzzing of the intake boundary (hypothesis): requests of every primitive (every field of
the arguments and of the envelope), pool files and rate cards, mutated field by field and byte by byte.

Each input ends admitted or refused with RequestInvalid (exit 0 or 2 on the command line), never another
exception; within PER_INPUT_S of CPU time; and a refused request never opens the database (no file, no row).
Inputs per run: REQUEST_EXAMPLES + POOL_EXAMPLES + RATE_CARD_EXAMPLES + COMMAND_LINE_EXAMPLES = 1500
(hypothesis' derandomized database-less profile below, so CI runs the same 1,500 every time: 29 s here on
a shared 2-core machine).
"""

import copy
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import polars
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forge_pipeline.assign.pool import load_pool, parse_pool
from forge_pipeline.cli import main
from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.admission import RequestIdConflict, admit_requests, read_request
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.inputs import input_area
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.settle.rate_card import RateCardInvalid, parse_rate_card
from forge_pipeline.storage.database import open_engine
from tests.lifecycle.requests import request

REQUEST_EXAMPLES, POOL_EXAMPLES, RATE_CARD_EXAMPLES, COMMAND_LINE_EXAMPLES = 1000, 200, 200, 100
PER_INPUT_S = 2.0  # measured: well under a second each; twice that for a shared CI machine
FUZZ = dict(derandomize=True, database=None, deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large])

NASTY_STRINGS = ["", " ", "acme\n", "acme", "vis-001\n", "a\x00b", "\u202e", "٠.٥", "-0", "0.0", "1e-999999999",
                 "1e999999999", "1e-65", "0.10000000000000000000000000000000000000001", "NaN", "Infinity", ".inf",
                 "../beta/rows.parquet", "/etc/passwd", "~root/x", "rows.parquet", "images.npy", "x" * 5000,
                 "probabilistic_simulation/portfolio_loss@1", "standard@1", "multi_node", "gpu", "!!python/object"]
NASTY_INTEGERS = [0, -1, 1, 2**31, 2**32 - 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**13, 10**39,
                  10**4000]


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


SCALARS = st.one_of(st.none(), st.booleans(), st.sampled_from(NASTY_INTEGERS), st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NASTY_STRINGS),
                    st.text(max_size=12))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
                   st.integers(min_value=30, max_value=200).map(nested))  # deeper: test_intake_regressions


def node_paths(document, prefix=()):
    """Every (container, key) in the document: the places a mutation can hit."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield prefix + (key,)
            yield from node_paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document[:8]):
            yield prefix + (index,)
            yield from node_paths(value, prefix + (index,))


@st.composite
def mutated_text(draw, bases):
    """A base document with 0-3 field mutations (replace, delete, add), as JSON or YAML text, sometimes cut or
    given a stray byte."""
    document = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 3))):
        paths = list(node_paths(document))
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = document
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(VALUES)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from([*NASTY_STRINGS[:8], "colour"]))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    if draw(st.booleans()):
        text = json.dumps(document, allow_nan=True)
    else:
        text = yaml.safe_dump(document, allow_unicode=True)
    cut = draw(st.sampled_from(["none", "none", "none", "truncate", "byte"]))
    data = text.encode("utf-8", "surrogatepass")
    if cut == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif cut == "byte":
        at = draw(st.integers(0, len(data)))
        stray = draw(st.sampled_from([b"\xff", b"\x00", b"&a ", b"*a", b"!!", b"[", b"{", b"\n- "]))
        data = data[:at] + stray + data[at:]
    return data


def request_bases(area: Path) -> list[dict]:
    """A valid request of every primitive (its benchmark arguments), plus inline and file sources."""
    bases = [request(request_id=f"fuzz-{index}", primitive=name, arguments=None) | {
        "arguments": primitive.benchmark_arguments(100), "policy": {"shard_size": 50}, "tags": {"team": "quant"}}
        for index, (name, primitive) in enumerate(sorted(PRIMITIVES.items()))]
    area.mkdir(parents=True, exist_ok=True)
    polars.DataFrame({"key": [1, 2, 1], "value": [5, 6, 7]}).write_parquet(area / "rows.parquet")
    np.save(area / "images.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    bases.append(request(request_id="fuzz-file-1", primitive="aggregation/grouped_sum@1", arguments=None)
                 | {"arguments": {"parquet": {"path": "rows.parquet", "key_column": "key", "value_column": "value"}}})
    bases.append(request(request_id="fuzz-file-2", primitive="media_transformation/image_filter@1", arguments=None)
                 | {"arguments": {"npy": {"path": "images.npy", "shape": [2, 4, 4]}}})
    bases.append(request(request_id="fuzz-inline", primitive="aggregation/grouped_sum@1", arguments=None)
                 | {"arguments": {"rows": [[1, 2], [3, 4], [1, -5]]}})
    return bases


def timed(function, *arguments):
    """`function(*arguments)`, asserting it used under PER_INPUT_S of this process's CPU time (CPU, not wall
    time: the bound is on the work an input causes, not on what else the shared machine runs)."""
    started = time.process_time()
    try:
        return function(*arguments)
    finally:
        assert time.process_time() - started < PER_INPUT_S


def test_fuzzed_requests_are_admitted_or_refused_by_path(forge_home):
    """Every mutated request is admitted or refused with RequestInvalid, in bounded time; a refused one never opens
    the database."""
    bases = request_bases(input_area("acme"))
    pool = load_pool()
    for base in bases:  # the bases themselves are valid
        read_request(base, pool)
    opened: list[int] = []

    def open_database():
        opened.append(1)
        return open_engine()

    tried, outcomes = [], {"admitted": 0, "conflict": 0, "refused": 0}

    @settings(max_examples=REQUEST_EXAMPLES, **FUZZ)
    @given(mutated_text(bases))
    def check(data):
        tried.append(data)
        opened.clear()
        try:
            timed(admit_requests, [("fuzzed", data)], pool, open_database)
            outcomes["admitted"] += 1
        except RequestInvalid as refused:
            assert refused.problems and all(problem.path.startswith("fuzzed") for problem in refused.problems)
            assert opened == [] or isinstance(refused, RequestIdConflict)
            outcomes["conflict" if isinstance(refused, RequestIdConflict) else "refused"] += 1

    check()
    assert len(tried) >= REQUEST_EXAMPLES and outcomes["admitted"] and outcomes["conflict"], outcomes


def test_fuzzed_pool_files_load_or_are_refused():
    """Every mutated pool file parses to a pool or is refused with RequestInvalid, in bounded time."""
    base = load_document(resources.files("forge_pipeline.catalog").joinpath("pool.yaml").read_bytes())

    tried = []

    @settings(max_examples=POOL_EXAMPLES, **FUZZ)
    @given(mutated_text([base]))
    def check(data):
        tried.append(data)
        try:
            timed(lambda: parse_pool(load_document(data, "pool.yaml"), "pool.yaml"))
        except RequestInvalid as refused:
            assert refused.problems

    check()
    assert len(tried) >= POOL_EXAMPLES


def test_fuzzed_rate_cards_load_or_are_refused():
    """Every mutated rate card parses or is refused with RateCardInvalid (or the loader's RequestInvalid), in bounded
    time."""
    base = load_document(resources.files("forge_pipeline.catalog").joinpath("rate_cards", "2026-11-01.yaml")
                         .read_bytes())

    tried = []

    @settings(max_examples=RATE_CARD_EXAMPLES, **FUZZ)
    @given(mutated_text([base]))
    def check(data):
        tried.append(data)
        try:
            timed(lambda: parse_rate_card(load_document(data, "card.yaml"), "card.yaml"))
        except (RateCardInvalid, RequestInvalid) as refused:
            assert refused.problems

    check()
    assert len(tried) >= RATE_CARD_EXAMPLES


def test_fuzzed_submissions_exit_0_or_2(forge_home, tmp_path, capsys):
    """Through `forge-pool submit`: exit 0 or 2, never a traceback, in bounded time."""
    bases = request_bases(input_area("acme"))
    path = tmp_path / "fuzzed.request"
    codes = []

    @settings(max_examples=COMMAND_LINE_EXAMPLES, **FUZZ)
    @given(mutated_text(bases))
    def check(data):
        path.write_bytes(data)
        codes.append(timed(main, ["submit", str(path)]))
        assert codes[-1] in (0, 2)
        assert "Traceback" not in capsys.readouterr().err

    check()
    assert len(codes) >= COMMAND_LINE_EXAMPLES and set(codes) == {0, 2}, codes


@pytest.mark.parametrize("depth", [31, 32, 33])
def test_depth_limit_is_exact(depth):
    """Documents nest up to MAX_DEPTH (32) levels in either format and not one more."""
    document = nested(depth - 1)
    for text in (json.dumps({"a": document}), yaml.safe_dump({"a": document})):
        if depth <= 32:
            assert load_document(text)["a"] == document
        else:
            with pytest.raises(RequestInvalid, match="nested deeper than 32 levels"):
                load_document(text)
