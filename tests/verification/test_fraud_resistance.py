import datetime as dt
import json
import shutil
from fractions import Fraction

import pytest
import yaml

from forge_pipeline.assign.pool import parse_pool
from forge_pipeline.assign.reliability import Reliability, reliability_of
from forge_pipeline.cli import main
from forge_pipeline.intake.request import validate_request
from forge_pipeline.lifecycle import admitted_request, plan_workload
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import attempts_of, store_request
from tests.lifecycle.requests import request
from tests.money.workloads import finalize


def three_providers(rogue_fault: dict | None) -> object:
    rogue = {"id": "rogue-1", "hardware": "cpu", **({"fault": rogue_fault} if rogue_fault else {})}
    return parse_pool({"providers": [{"id": "alpha", "agents": [{"id": "alpha-1", "hardware": "cpu"}]},
                                     {"id": "beta", "agents": [{"id": "beta-1", "hardware": "cpu"}]},
                                     {"id": "rogue", "agents": [rogue]}]})


def test_multi_node_detects_every_corrupted_shard(forge_home):
    """multi_node with 3 replicas on 3 providers: every attempt the corrupt Agent corrupted is rejected."""
    engine = open_engine()
    clean = finalize(engine, request_id="clean", pool=three_providers(None),
                     policy={"verification": "multi_node", "replicas": 3, "shard_size": 25})
    usage = finalize(engine, request_id="dirty", pool=three_providers({"kind": "corrupt", "rate": "0.5"}),
                     policy={"verification": "multi_node", "replicas": 3, "shard_size": 25})
    rogue = [a for a in attempts_of(engine, usage["workload_id"]) if a["agent_id"] == "rogue-1"]
    corrupted = [a for a in rogue if "fault: corrupt" in a["detail"]]
    assert len(rogue) == 24 and 0 < len(corrupted) < 24
    assert all(a["verdict"] == "rejected" for a in corrupted)
    assert all(a["verdict"] == "verified" for a in rogue if a not in corrupted)
    assert usage["output_digest"] == clean["output_digest"]


def escape_probability(sample_rate: Fraction, shards: int) -> Fraction:
    """A new Agent (streak < 10) is sampled at min(1, 2s) per shard, so it escapes a workload
    in which it computed m shards with probability (1 - 2s)^m, and n workloads with the product;
    the expected number of workloads to detection is 1 / (1 - (1 - 2s)^m) for a steady m."""
    return (1 - min(Fraction(1), 2 * sample_rate)) ** shards


def test_replay_sample_catches_a_corrupting_agent_within_the_stated_bound(forge_home):
    """At s = 0.1 the corrupting Agent is caught before its chance of escaping falls below 1%."""
    engine = open_engine()
    pool = three_providers({"kind": "corrupt", "rate": "1"})
    escaped, workloads = Fraction(1), 0
    while escaped >= Fraction(1, 100):
        workloads += 1
        usage = finalize(engine, request_id=f"w{workloads}", pool=pool, replay={"seed": 1000 + workloads},
                         policy={"verification": "replay_sample", "sample_rate": "0.1"})
        rogue = [a for a in attempts_of(engine, usage["workload_id"]) if a["agent_id"] == "rogue-1"]
        if any(a["verdict"] == "rejected" for a in rogue):
            break
        escaped *= escape_probability(Fraction(1, 10), len(rogue))
        assert workloads < 100, "the corrupting Agent stopped getting work without being caught"
    else:
        pytest.fail(f"the corrupting Agent escaped {workloads} workloads (escape probability {float(escaped):.4f})")
    assert reliability_of(engine, ["rogue-1"])["rogue-1"].quarantined


def test_an_always_lazy_agent_ends_quarantined_and_gets_only_probation(forge_home):
    """A lazy Agent is rejected, quarantined, then offered only an unpaid probation shard, which it fails."""
    engine = open_engine()
    pool = three_providers({"kind": "lazy", "rate": "1"})
    policy = {"verification": "replay_sample", "sample_rate": "1"}
    finalize(engine, request_id="first", pool=pool, policy=policy)
    assert reliability_of(engine, ["rogue-1"])["rogue-1"].quarantined
    workload_id, _ = store_request(engine, validate_request(request(request_id="second", policy={
        **policy, "shard_size": 100}, arguments={"scenarios": 600})))
    planned = plan_workload(engine, admitted_request(engine, workload_id, "test-run"), pool, False)
    assert planned["probation"] == {"rogue-1": 0} and planned["batches"]["rogue-1"] == [0]
    second = finalize(engine, request_id="third", pool=pool, policy=policy)
    rogue = [a for a in attempts_of(engine, second["workload_id"]) if a["agent_id"] == "rogue-1"]
    assert [(a["detail"].split(";")[0], a["verdict"]) for a in rogue] == [("probation", "rejected")]
    assert "rogue" not in second["verified_work_units_by_provider"]
    assert reliability_of(engine, ["rogue-1"])["rogue-1"].quarantined


def test_reliability_counts_streak_score_and_adaptive_rates():
    """Score, quarantine and the sampling tiers follow the stated formulas."""
    new = Reliability("a")
    assert new.score == Fraction(1, 2) and not new.quarantined
    assert new.sample_rate(Fraction(1, 10)) == Fraction(1, 5)
    assert Reliability("a", verified=20, streak=20).sample_rate(Fraction(1, 10)) == Fraction(1, 10)
    assert Reliability("a", verified=60, streak=60).sample_rate(Fraction(1, 10)) == Fraction(1, 20)
    once_wrong = Reliability("a", rejected=1, last_verdict="rejected")
    assert once_wrong.score == Fraction(1, 6) and once_wrong.quarantined
    veteran = Reliability("a", verified=100, rejected=1, streak=0, last_verdict="rejected")
    assert veteran.score == Fraction(101, 106) and not veteran.quarantined
    assert not Reliability("a", rejected=1, verified=1, streak=1, last_verdict="verified").quarantined


def test_reliability_history_is_read_from_persisted_verdicts(forge_home):
    """After a clean workload each Agent's verified count and streak equal its verified attempts."""
    engine = open_engine()
    usage = finalize(engine, pool=three_providers(None), policy={"verification": "replay_sample", "sample_rate": "1"})
    attempts = attempts_of(engine, usage["workload_id"])
    history = reliability_of(engine, ["alpha-1", "beta-1", "rogue-1"])
    for agent_id, record in history.items():
        verified = sum(1 for a in attempts if a["agent_id"] == agent_id and a["verdict"] == "verified")
        assert record.verified == verified == record.streak and verified > 0


def test_replay_reproduces_and_detects_tampering(forge_home, tmp_path, capsys):
    """replay exits 0 on a finalized workload, 1 after its output.json or manifest is edited, 2 for unknown ids."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(request()))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    assert main(["run"]) == 0
    assert main(["settle", dt.datetime.now(dt.timezone.utc).date().isoformat()]) == 0
    capsys.readouterr()
    assert main(["replay", workload_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is True
    from forge_pipeline.storage.records import usage_record_of
    directory = forge_home / "artifacts" / usage_record_of(open_engine(), workload_id)["evidence_path"]
    original = (directory / "output.json").read_text()
    tampered = json.loads(original)
    tampered["loss_total"] += 1
    (directory / "output.json").write_text(json.dumps(tampered))
    assert main(["replay", workload_id]) == 1
    assert "evidence output.json digest" in capsys.readouterr().out
    (directory / "output.json").write_text(original)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][0]["agent_id"] = "someone-else"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert main(["replay", workload_id]) == 1
    assert "evidence manifest digest" in capsys.readouterr().out
    assert main(["replay", "wl_unknown"]) == 2


def test_a_copy_of_the_home_elsewhere_replays(forge_home, tmp_path, monkeypatch, capsys):
    """Evidence paths are recorded relative to the artifact store: an auditor's copy of the home at another
    path, the original gone, replays and reproduces."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(request()))
    assert main(["submit", str(path)]) == 0
    workload_id = capsys.readouterr().out.strip()
    assert main(["run"]) == 0
    copy = tmp_path / "auditor" / "forge"
    shutil.copytree(forge_home, copy)
    shutil.rmtree(forge_home)
    monkeypatch.setenv("FORGE_HOME", str(copy))
    monkeypatch.setenv("DAGSTER_HOME", str(copy / "dagster"))
    capsys.readouterr()
    assert main(["replay", workload_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is True


@pytest.mark.parametrize("pool_document, expected", [
    ({"providers": [{"id": "p", "agents": [{"id": "a", "hardware": "cpu", "colour": "red"}]}]},
     "providers[0].agents[0].colour: unknown field"),
    ({"providers": [{"id": "p", "agents": [{"id": "a", "hardware": "cpu"}, {"id": "a", "hardware": "cpu"}]}]},
     "duplicate agent id 'a'"),
    ({"providers": [{"id": "p", "agents": [{"id": "a", "hardware": "cpu",
                                            "capabilities": ["graph_propagation"]}]}]},
     "primitive: no Agent in"),
])
def test_bad_pool_files_are_refused_at_submit(pool_document, expected, forge_home, tmp_path, monkeypatch, capsys):
    """Unknown fields, duplicate ids and a pool that cannot run the primitive: exit 2 with the reason."""
    pool_file, request_file = tmp_path / "pool.yaml", tmp_path / "request.yaml"
    pool_file.write_text(yaml.safe_dump(pool_document))
    request_file.write_text(yaml.safe_dump(request()))
    monkeypatch.setenv("FORGE_POOL_FILE", str(pool_file))
    assert main(["submit", str(request_file)]) == 2
    assert expected in capsys.readouterr().err


def test_a_workload_fails_with_a_clear_reason_when_no_honest_capacity_remains(forge_home):
    """Every Agent crashes: the workload ends Failed naming the shard and each Agent's failure; nothing is billed."""
    from forge_pipeline.ledger.ledger import entries
    from forge_pipeline.lifecycle import WorkloadFailed
    from forge_pipeline.storage.records import load_workload, usage_record_of
    engine = open_engine()
    pool = parse_pool({"providers": [
        {"id": "p1", "agents": [{"id": "a1", "hardware": "cpu", "fault": {"kind": "crash"}}]},
        {"id": "p2", "agents": [{"id": "a2", "hardware": "cpu", "fault": {"kind": "timeout"}}]}]})
    with pytest.raises(WorkloadFailed, match=r"execution: shard 0 failed on every Agent able to run it "
                                             r"\(a1: crashed; a2: timed_out\)"):
        finalize(engine, pool=pool)
    from forge_pipeline.storage.records import list_workload_ids
    [workload_id] = list_workload_ids(engine)
    assert load_workload(engine, workload_id)["state"] == "Failed"
    assert usage_record_of(engine, workload_id) is None and entries(engine) == []


def test_multi_node_never_counts_two_agents_of_one_provider_as_two_votes(forge_home):
    """One provider with two corrupting Agents and an honest provider that crashes: the corrupt provider
    cannot outvote anyone with its second Agent, so the workload fails instead of billing wrong output."""
    from forge_pipeline.lifecycle import WorkloadFailed
    engine = open_engine()
    pool = parse_pool({"providers": [
        {"id": "mallory", "agents": [{"id": "m1", "hardware": "cpu", "fault": {"kind": "corrupt"}},
                                     {"id": "m2", "hardware": "cpu", "fault": {"kind": "corrupt"}}]},
        {"id": "bob", "agents": [{"id": "b1", "hardware": "cpu", "fault": {"kind": "crash"}}]}]})
    with pytest.raises(WorkloadFailed, match="failed on every Agent able to run it"):
        finalize(engine, pool=pool, policy={"verification": "multi_node", "replicas": 2})


def test_a_workload_is_claimed_by_one_run(forge_home):
    """A second run cannot start a workload another run claimed; a re-execution of the claiming run can."""
    from forge_pipeline.lifecycle import WorkloadFailed
    engine = open_engine()
    workload_id, _ = store_request(engine, validate_request(request()))
    admitted_request(engine, workload_id, "run-a")
    with pytest.raises(WorkloadFailed, match="another run has its lifecycle"):
        admitted_request(engine, workload_id, "run-b")
    assert admitted_request(engine, workload_id, "run-a")["workload_id"] == workload_id


def test_rematerializing_a_disputed_workloads_usage_record_does_not_resolve_it(forge_home):
    """Running usage_record again for a Disputed workload fails for that workload (named on its
    materialization) and leaves it Disputed and unbilled."""
    from dagster import AssetSelection, DagsterInstance, materialize

    from forge_pipeline.definitions import resources
    from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, usage_record
    from forge_pipeline.settle.settlement import dispute, settle_cycle
    from forge_pipeline.storage.records import load_workload
    from tests.money.workloads import today_cycle
    engine = open_engine()
    workload_id, _ = store_request(engine, validate_request(request()))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("workloads", [workload_id])
    assert materialize(WORKLOAD_ASSETS, partition_key=workload_id, instance=instance, resources=resources()).success
    dispute(engine, workload_id, "wrong output")
    again = materialize(WORKLOAD_ASSETS, selection=AssetSelection.assets(usage_record), partition_key=workload_id,
                        instance=instance, resources=resources(), raise_on_error=False)
    [materialization] = [event.event_specific_data.materialization for event in again.get_asset_materialization_events()]
    assert "Disputed" in materialization.metadata["failed"].value
    assert load_workload(engine, workload_id)["state"] == "Disputed"
    assert settle_cycle(engine, today_cycle())["billable_workloads"] == 0


@pytest.mark.parametrize("providers, expected", [
    ([{"id": "platform", "agents": [{"id": "a", "hardware": "cpu"}]}], "'platform' is reserved"),
    ([{"id": "p", "agents": [{"id": "hub", "hardware": "cpu"}]}], "'hub' is reserved"),
    ([{"id": "p", "agents": [{"id": "a-1", "hardware": "cpu"}, {"id": "a_1", "hardware": "cpu"}]}],
     "differ only in '-', '.' or '_'"),
])
def test_pool_ids_that_would_be_mistaken_are_refused(providers, expected):
    """Reserved platform names and Agent ids whose Dagster step keys collide are refused by name."""
    from forge_pipeline.intake.problems import RequestInvalid
    with pytest.raises(RequestInvalid, match=expected):
        parse_pool({"providers": providers})
