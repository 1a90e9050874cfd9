"""Each kind of fault found by throwing malformed input at `forge-pool submit` (issue 10), as a named
regression: exit 2 with the field path, within a second, no traceback, nothing written."""

import json
import os
import re
import time
import tracemalloc

import pytest
import yaml

from forge_pipeline.cli import main
from forge_pipeline.intake.problems import join
from tests.lifecycle.requests import request

SECOND_S = 1.0  # the bound on refusing anything under the size limits (measured well under it)
PEAK_BYTES = 64 << 20  # the bound on memory allocated while refusing (the largest file read is 8 MiB)


def submit(tmp_path, forge_home, text: str | bytes, name: str = "request.json") -> int:
    """`forge-pool submit` of one file holding `text`: its exit code; checks the time, the peak of Python memory
    allocated, and that nothing was written."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    tracemalloc.start()
    started = time.process_time()  # CPU time: what the input costs, whatever else the machine runs
    try:
        code = main(["submit", str(path)])
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < SECOND_S * 3, f"took {elapsed:.2f} s"  # x3: tracemalloc's own cost
    assert peak < PEAK_BYTES, f"allocated {peak} bytes at the peak"
    if code != 0:
        assert not (forge_home / "forge.db").exists(), "a refused submit created the database"
    return code


def refused(capsys, tmp_path, forge_home, text, *expected: str, name: str = "request.json") -> None:
    """Submitting `text` exits 2 within the bound, prints no id and no traceback, names every `expected`."""
    assert submit(tmp_path, forge_home, text, name) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    for message in expected:
        assert message in captured.err, captured.err


def as_json(**changes) -> str:
    return json.dumps(request(**changes))


# 1. Tracebacks instead of exit 2

def test_json_nested_thousands_of_levels_deep(capsys, tmp_path, forge_home):
    """A JSON document nested 5,000 deep is refused by its depth before the parser recurses."""
    refused(capsys, tmp_path, forge_home, '{"tags": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 32 levels")


def test_yaml_nested_thousands_of_levels_deep(capsys, tmp_path, forge_home):
    """YAML nested 5,000 deep, in flow and in block style, is refused by the loader's depth count."""
    refused(capsys, tmp_path, forge_home, "tags: " + "[" * 5000 + "]" * 5000, "nested deeper than 32 levels",
            name="a.yaml")
    refused(capsys, tmp_path, forge_home, "- " * 5000 + "x", "nested deeper than 32 levels", name="b.yaml")


@pytest.mark.parametrize("literal", ["9" * 5000, "0x" + "f" * 5000, "-" + "1" * 4301])
def test_integer_literal_of_thousands_of_digits(literal, capsys, tmp_path, forge_home):
    """An integer literal of thousands of digits (decimal, or hex in YAML) is never converted: refused by path."""
    document = yaml.safe_dump(request()).replace("scenarios: 2000", f"scenarios: {literal}")
    refused(capsys, tmp_path, forge_home, document, "arguments.scenarios: an integer of", name="r.yaml")
    if not literal.startswith("0x"):
        refused(capsys, tmp_path, forge_home, as_json().replace('"scenarios": 2000', f'"scenarios": {literal}'),
                "arguments.scenarios: an integer of")


def test_replicas_written_as_a_decimal(capsys, tmp_path, forge_home):
    """`policy.replicas: 1.0` is a number that is not an integer: refused by path."""
    refused(capsys, tmp_path, forge_home, as_json(policy={"replicas": 1.0}), "policy.replicas:")


def test_shard_size_null(capsys, tmp_path, forge_home):
    """`policy.shard_size: null` is a problem recorded by path (it used to leave no policy and no problem)."""
    refused(capsys, tmp_path, forge_home, as_json(policy={"shard_size": None}),
            "policy.shard_size: must be an integer, got null")


@pytest.mark.parametrize("name, expected", [
    ("~nosuchuser/rows.parquet", "must name a file in the organization's input area"),
    ("rows\x00.parquet", "must not hold control characters"),
    ("r" * 300 + ".parquet", "cannot be opened: File name too long"),
    ("../beta/rows.parquet", "must name a file in the organization's input area"),
    ("r" * 1100, "must be at most 1024 characters"),
])
def test_malformed_input_file_names(name, expected, capsys, tmp_path, forge_home):
    """Malformed input names (~user, NUL, a 300-character component, ..) are refused by path, not raised."""
    (forge_home / "inputs" / "acme").mkdir(parents=True)
    document = {**request(primitive="aggregation/grouped_sum@1"), "arguments": {"parquet": {"path": name}}}
    refused(capsys, tmp_path, forge_home, json.dumps(document), f"arguments.parquet.path: {expected}")


def test_non_utf8_command_line_arguments(capsys, forge_home):
    """A non-UTF-8 byte in --org, --reason or a workload id is exit 2 naming the argument, before anything runs."""
    undecodable = os.fsdecode(b"acme\xff")
    for argv in (["export", "--cycle", "2026-11-25", "--org", undecodable, "--format", "csv", "-o", "x.csv"],
                 ["dispute", "wl_x", "--reason", undecodable], ["status", undecodable]):
        assert main(argv) == 2
        captured = capsys.readouterr().err
        assert "not UTF-8 text" in captured and "Traceback" not in captured
    assert not (forge_home / "forge.db").exists()


# 2. Stalls and memory blow-ups

def test_huge_decimal_exponents_answer_at_once(capsys, tmp_path, forge_home):
    """`pd: "1e-999999999"` and `sample_rate: "1e999999999"` are refused by their exponent, at once."""
    document = as_json(policy={"sample_rate": "1e999999999"},
                       arguments={"obligors": [{"exposure": 1, "pd": "1e-999999999"}]})
    refused(capsys, tmp_path, forge_home, document, "arguments.obligors[0].pd: exponent beyond +-64",
            "policy.sample_rate: exponent beyond +-64")


def test_hundred_obligors_with_a_million_digit_exponent(capsys, tmp_path, forge_home):
    """100 obligors with `pd: "1e-1000000"` (3.5 KB) are refused in well under a second, never stored."""
    document = as_json(arguments={"obligors": [{"exposure": 1, "pd": "1e-1000000"}] * 100})
    refused(capsys, tmp_path, forge_home, document, "arguments.obligors[99].pd: exponent beyond +-64")


def test_yaml_alias_bomb_inside_one_value(capsys, tmp_path, forge_home):
    """A billion-laughs alias bomb placed inside a single value (tags.team) is refused at its first anchor."""
    bomb = "".join(["    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
                   + [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)])
    document = yaml.safe_dump({**request(), "tags": {}}).replace("tags: {}\n", "tags:\n  team:\n" + bomb)
    assert len(bomb) < 1000
    refused(capsys, tmp_path, forge_home, document, "anchors and aliases are not accepted", name="bomb.yaml")


def test_large_plain_yaml_is_refused_by_size(capsys, tmp_path, forge_home):
    """A 7.8 MB plain YAML request is refused by its size before it is parsed (it took two minutes and 1.4 GB)."""
    obligors = "  - exposure: 1\n    pd: '0.1'\n" * 260_000
    text = yaml.safe_dump(request()).replace("  obligors:\n", "  obligors:\n" + obligors)
    assert 7 << 20 < len(text) < 8 << 20
    refused(capsys, tmp_path, forge_home, text, "bytes of YAML; YAML is at most", name="big.yaml")


def test_request_for_ten_trillion_draws(capsys, tmp_path, forge_home):
    """A request for 10^13 draws is refused at intake by the profile's work-unit limit."""
    document = as_json(arguments={"scenarios": 10**11, "obligors": [{"exposure": 1, "pd": "0.1"}] * 100,
                                  "quantiles": ["0.99999999"]})
    refused(capsys, tmp_path, forge_home, document, "work units per request")


# 3. Inputs that silently change meaning (the exactness cases are in test_intake_exactness.py)

def test_digits_of_other_scripts(capsys, tmp_path, forge_home):
    """`"٠.٥"` (Arabic-Indic digits) is not a number here."""
    refused(capsys, tmp_path, forge_home, as_json(arguments={"obligors": [{"exposure": 1, "pd": "٠.٥"}]}),
            "arguments.obligors[0].pd: must be a decimal number written with ASCII digits")


@pytest.mark.parametrize("text, name", [
    ('{"organization": "acme", "organization": "evil", "request_id": "x"}', "dup.json"),
    ("organization: acme\norganization: evil\nrequest_id: x\n", "dup.yaml"),
])
def test_duplicate_keys(text, name, capsys, tmp_path, forge_home):
    """A duplicate key (including `organization`) is refused, never resolved to the last one."""
    refused(capsys, tmp_path, forge_home, text, "organization: duplicate key 'organization'", name=name)


# 4. Identifiers that look alike

@pytest.mark.parametrize("field, value", [("organization", "acme\n"), ("request_id", "vis-001\n"),
                                          ("organization", "acme "), ("project", "risk\u200b"),
                                          ("workspace", "ｐｒｏｄ"), ("adapter", "-sdk")])
def test_identifiers_that_look_like_others(field, value, capsys, tmp_path, forge_home):
    """An id with a trailing newline, space, zero-width or full-width character is refused, whole-string."""
    refused(capsys, tmp_path, forge_home, as_json(**{field: value}), f"{field}: must be 1 to 128 characters")


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "tab\there", "\u202eevil", "sep\u2028x"])
def test_tag_values_with_control_characters(value, capsys, tmp_path, forge_home):
    """Tag values hold no control, format or separator characters (NUL, newline, bidi override)."""
    refused(capsys, tmp_path, forge_home, as_json(tags={"team": value}), "tags.team: must not hold control")


@pytest.mark.parametrize("key", ["team\n", "te am", ""])
def test_tag_keys_are_identifiers(key, capsys, tmp_path, forge_home):
    """Tag keys follow the identifier grammar; a key that is not printable is shown quoted, on one line."""
    refused(capsys, tmp_path, forge_home, as_json(tags={key: "x"}), f"{join('tags', key)}: must be")


# 7. Refused input still writes

def test_refused_submit_creates_no_database_even_with_an_empty_home(capsys, tmp_path, monkeypatch):
    """FORGE_HOME set but empty is refused (it would put the database in the current folder); nothing is created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORGE_HOME", "")
    monkeypatch.delenv("FORGE_DATABASE_URL", raising=False)
    path = tmp_path / "r.json"
    path.write_text(as_json())
    assert main(["submit", str(path)]) == 2
    assert "FORGE_HOME: is set but empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_in_memory_sqlite_is_refused(capsys, tmp_path, forge_home, monkeypatch):
    """`FORGE_DATABASE_URL=sqlite://` would accept a workload into a database that vanishes: exit 2."""
    for url in ("sqlite://", "sqlite:///:memory:"):
        monkeypatch.setenv("FORGE_DATABASE_URL", url)
        refused(capsys, tmp_path, forge_home, as_json(), "FORGE_DATABASE_URL: an in-memory SQLite database")


# Pool files and rate cards pass the same boundary

@pytest.mark.parametrize("text, expected", [
    ("providers:\n  - id: \"northwind\\n\"\n    agents: [{id: nw-1, hardware: cpu}]\n",
     "providers[0].id: must be 1 to 128"),
    ("providers:\n  - id: northwind\n    agents: [{id: \"nw-1\\u0000\", hardware: cpu}]\n",
     "agents[0].id: must be 1 to 128"),
    ("providers:\n  - id: a\n    id: b\n    agents: [{id: nw-1, hardware: cpu}]\n",
     "providers[0].id: duplicate key 'id'"),
    ("providers:\n  - &p {id: a, agents: [{id: x, hardware: cpu}]}\n  - *p\n", "anchors and aliases are not accepted"),
    ("providers:\n  - id: a\n    agents: [{id: x, hardware: cpu, fault: {kind: crash, rate: \"1e-99999\"}}]\n",
     "fault.rate: exponent beyond +-64"),
])
def test_pool_files_pass_the_intake_boundary(text, expected, tmp_path, monkeypatch, capsys):
    """A pool file's ids follow the identifier grammar and it is parsed under the same limits: exit 2 naming the
    pool file and the field, for any command."""
    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(text)
    monkeypatch.setenv("FORGE_POOL_FILE", str(pool_file))
    assert main(["agents"]) == 2
    captured = capsys.readouterr().err
    assert f"FORGE_POOL_FILE: {pool_file}: " in captured and expected in captured, captured


def test_rate_cards_pass_the_intake_boundary(tmp_path):
    """A rate card with a duplicate price, an alias or a primitive name ending in a newline is refused by path."""
    from forge_pipeline.settle.rate_card import RateCardInvalid, load_rate_card

    card = tmp_path / "card.yaml"
    for text, expected in (("version: \"2030-01-01\"\nversion: \"2030-01-02\"\n", "version: duplicate key"),
                           ("a: &x 1\nb: *x\n", "anchors and aliases are not accepted"),
                           ("primitives: {\"aggregation/grouped_sum@1\\n\": {}}\n",
                            "primitives['aggregation/grouped_sum@1\\n']: must be a name like")):
        card.write_text(text)
        with pytest.raises(RateCardInvalid, match=re.escape(expected)):
            load_rate_card(path=card)
