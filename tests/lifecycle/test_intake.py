import json

import pytest
import yaml
from sqlalchemy import func, select

from forge_pipeline.cli import main
from forge_pipeline.intake.problems import RequestInvalid
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.request import validate_request
from forge_pipeline.storage.database import open_engine, workloads
from tests.lifecycle.requests import request

OBLIGOR = {"exposure": 10, "pd": "0.1"}
BAD_REQUESTS = [
    ("missing field", {k: v for k, v in request().items() if k != "organization"}, "organization: is required"),
    ("wrong type", request(arguments={"scenarios": "many"}), "arguments.scenarios: must be an integer"),
    ("pd above one", request(arguments={"obligors": [OBLIGOR, {"exposure": 1, "pd": 1.5}]}),
     "arguments.obligors[1].pd: must be in [0, 1]"),
    ("negative exposure", request(arguments={"obligors": [{"exposure": -5, "pd": "0.1"}]}),
     "arguments.obligors[0].exposure: must be >= 0"),
    ("unknown primitive", request(primitive="probabilistic_simulation/portfolio_gain@1"),
     "primitive: unknown primitive or version"),
    ("unknown version", request(primitive="probabilistic_simulation/portfolio_loss@9"),
     "primitive: unknown primitive or version"),
    ("quantile of one", request(arguments={"quantiles": ["0.5", "1"]}), "arguments.quantiles[1]: must be in (0, 1)"),
    ("quantile of zero", request(arguments={"quantiles": [0]}), "arguments.quantiles[0]: must be in (0, 1)"),
    ("64-bit overflow", request(arguments={"obligors": [{"exposure": 2**62, "pd": "0.1"}, {"exposure": 2**62, "pd": "0"}]}),
     "arguments.obligors: total exposure"),
    ("empty obligors", request(arguments={"obligors": []}), "arguments.obligors: must not be empty"),
    ("unknown field", request(colour="blue"), "colour: unknown field"),
    ("bad verification", request(policy={"verification": "trust_me"}), "policy.verification: must be one of"),
    ("boolean seed", request(replay={"seed": True}), "replay.seed: must be an integer"),
]


@pytest.mark.parametrize("name, document, expected", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_invalid_requests_name_the_field_path(name, document, expected):
    """Each kind of bad input is refused with a message that starts with the offending field path."""
    with pytest.raises(RequestInvalid) as refused:
        validate_request(document)
    assert any(str(problem).startswith(expected) for problem in refused.value.problems), str(refused.value)


def test_every_problem_is_reported_at_once():
    """Two independent mistakes give two lines, so a user fixes the file in one pass."""
    document = request(arguments={"bins": 0, "obligors": [{"exposure": 1.5, "pd": "0.1"}]})
    with pytest.raises(RequestInvalid) as refused:
        validate_request(document)
    paths = {problem.path for problem in refused.value.problems}
    assert paths == {"arguments.bins", "arguments.obligors[0].exposure"}


@pytest.mark.parametrize("text, expected", [("{\"request_id\": ", "malformed JSON at line 1"),
                                            ("a: [1, 2\nb: c", "malformed YAML at line"),
                                            ("- just\n- a list", "must be a mapping")])
def test_malformed_documents_are_refused(text, expected):
    """Syntax errors and non-mapping documents are one clear problem, not a traceback."""
    with pytest.raises(RequestInvalid, match=expected):
        validate_request(load_document(text, "req.yaml"))


def count_workloads() -> int:
    with open_engine().connect() as connection:
        return connection.execute(select(func.count()).select_from(workloads)).scalar_one()


def test_cli_refuses_bad_files_with_exit_2_and_stores_nothing(forge_home, tmp_path, capsys):
    """One bad file among good ones: exit 2, one stderr line per problem, no workload stored at all."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.json"
    good.write_text(yaml.safe_dump(request()))
    bad.write_text(json.dumps(request(request_id="t-002", arguments={"obligors": [{"exposure": -1, "pd": 2}]})))
    assert main(["submit", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}: arguments.obligors[0].exposure: must be >= 0" in captured.err
    assert f"{bad}: arguments.obligors[0].pd: must be in [0, 1]" in captured.err
    assert "Traceback" not in captured.err
    assert count_workloads() == 0


def test_request_id_is_an_idempotency_key(forge_home, tmp_path, capsys):
    """The same request twice is one workload; the same id with other content is refused (exit 2)."""
    first, again, changed = (tmp_path / name for name in ("a.yaml", "b.json", "c.yaml"))
    first.write_text(yaml.safe_dump(request()))
    again.write_text(json.dumps(request()))
    changed.write_text(yaml.safe_dump(request(arguments={"scenarios": 10})))
    assert main(["submit", str(first)]) == 0
    workload_id = capsys.readouterr().out.strip()
    assert main(["submit", str(again)]) == 0
    assert capsys.readouterr().out.strip() == workload_id
    assert main(["submit", str(changed)]) == 2
    assert "already used for a different request" in capsys.readouterr().err
    assert count_workloads() == 1


def test_the_hub_assigns_and_records_a_seed_when_absent(forge_home):
    """A request without replay.seed gets a uint64 seed, stored, and the same on resubmission."""
    from forge_pipeline.storage.records import load_workload, store_request
    document = request()
    del document["replay"]
    engine = open_engine()
    workload_id, _ = store_request(engine, validate_request(document))
    seed = load_workload(engine, workload_id)["seed"]
    store_request(engine, validate_request(document))
    assert 0 <= seed < 2**64 and load_workload(engine, workload_id)["seed"] == seed
