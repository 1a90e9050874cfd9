import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from dagster import DagsterInstance
from sqlalchemy import BigInteger, Float, Integer, Numeric, func, select

from forge_pipeline.cli import main
from forge_pipeline.definitions import defs
from forge_pipeline.ledger.ledger import entries, verify_chain
from forge_pipeline.settle import tables
from forge_pipeline.settle.settlement import cycle_entries, settle_cycle
from forge_pipeline.states import State
from forge_pipeline.storage.database import dispose_engines, ledger_entries, metadata, open_engine
from forge_pipeline.storage.records import transition
from tests.money.workloads import corrupt_pool, finalize, today_cycle


def settle_through_dagster(cycle_key: str):
    return defs.resolve_job_def("billing_cycle_settlement").execute_in_process(
        partition_key=cycle_key, instance=DagsterInstance.ephemeral(), raise_on_error=False)


def ledger_size(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(ledger_entries)).scalar_one()


def test_settling_a_cycle_twice_posts_once_and_gives_identical_statements(database):
    """Through Dagster: the second settlement posts nothing and the statements are equal; charges = payouts + fees."""
    usage = [finalize(database, request_id=f"w-{i}", organization=org) for i, org in enumerate(["acme", "acme", "zeta"])]
    cycle = today_cycle()
    first = settle_through_dagster(cycle.key)
    assert first.success and first.output_for_node("settlement_postings")["newly_posted"] == 3
    assert all(check.passed for check in first.get_asset_check_evaluations())
    size = ledger_size(database)
    statement = first.output_for_node("credit_statement")["rows"]
    second = settle_through_dagster(cycle.key)
    assert second.success and second.output_for_node("settlement_postings")["newly_posted"] == 0
    assert ledger_size(database) == size
    assert second.output_for_node("credit_statement")["rows"] == statement
    assert {row["organization"]: row["charge_ucr"] for row in statement} == {
        "acme": usage[0]["charge_ucr"] + usage[1]["charge_ucr"], "zeta": usage[2]["charge_ucr"]}
    payouts = second.output_for_node("provider_payouts")["rows"]
    fees = sum(row["amount_ucr"] for row in entries(database, kind="settlement", account="platform:revenue"))
    assert sum(row["payout_ucr"] for row in payouts) + fees == sum(u["charge_ucr"] for u in usage)
    assert verify_chain(database).ok


def test_faults_cost_the_platform_never_the_customer(database):
    """A corrupting Agent changes neither the charge nor the output; its provider is paid nothing;
    the rejected work is recorded as non-billable cost."""
    honest = finalize(database, request_id="clean", pool=corrupt_pool("0"), policy={"verification": "replay_sample",
                                                                                   "sample_rate": "1"})
    faulty = finalize(database, request_id="faulty", pool=corrupt_pool("1"), policy={"verification": "replay_sample",
                                                                                    "sample_rate": "1"})
    assert faulty["output_digest"] == honest["output_digest"]
    assert faulty["charge_ucr"] == honest["charge_ucr"]
    assert faulty["charge"]["nonbillable_units"] > 0 and faulty["charge"]["nonbillable_ucr"] > 0
    nonbillable = entries(database, transaction_id=f"nonbillable:{faulty['workload_id']}")
    assert {row["account"]: row["amount_ucr"] for row in nonbillable} == {
        "platform:fault_cost": -faulty["charge"]["nonbillable_ucr"],
        "platform:fault_absorbed": faulty["charge"]["nonbillable_ucr"]}
    settle_cycle(database, today_cycle())
    paid = {row["provider_id"] for row in entries(database, workload_id=faulty["workload_id"], kind="settlement")
            if row["provider_id"]}
    assert "liar" not in paid and "honest" in paid
    customer = [row for row in entries(database, workload_id=faulty["workload_id"], kind="settlement")
                if row["account"].startswith("customer:")]
    assert [-row["amount_ucr"] for row in customer] == [honest["charge_ucr"]]


def test_disputed_workloads_are_held_out_until_resolved(database):
    """A Disputed workload is not settled; once resolved it is settled (in the cycle of its resolution)."""
    usage = finalize(database)
    transition(database, usage["workload_id"], State.DISPUTED, "customer disputes the output")
    assert settle_cycle(database, today_cycle())["billable_workloads"] == 0
    assert entries(database, kind="settlement") == []
    transition(database, usage["workload_id"], State.FINALIZED, "dispute resolved: output reproduced")
    assert settle_cycle(database, today_cycle())["newly_posted"] == 1


def test_failed_workloads_are_never_billed(database):
    """A workload that ends Failed (over its budget cap) has no usage record, no charge, no settlement."""
    from forge_pipeline.lifecycle import WorkloadFailed
    with pytest.raises(WorkloadFailed, match="budget"):
        finalize(database, policy={"max_credits_ucr": 1})
    assert settle_cycle(database, today_cycle())["billable_workloads"] == 0
    assert entries(database) == []


def test_export_holds_only_the_requested_organization(database, tmp_path, capsys):
    """`export --org` writes only that organization's lines, as CSV and Parquet; without --org, all."""
    for i, org in enumerate(["acme", "zeta", "acme"]):
        finalize(database, request_id=f"e-{i}", organization=org)
    cycle = today_cycle()
    settle_cycle(database, cycle)
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"acme.{fmt}"
        assert main(["export", "--cycle", cycle.key, "--org", "acme", "--format", fmt, "-o", str(path)]) == 0
        frame = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        assert frame.height == 2 and set(frame["organization"]) == {"acme"}
        assert frame.schema["charge_ucr"] == pl.Int64
    assert main(["export", "--cycle", cycle.key, "--format", "csv", "-o", str(tmp_path / "all.csv")]) == 0
    assert pl.read_csv(tmp_path / "all.csv").height == 3
    assert main(["export", "--cycle", "yesterday", "--format", "csv", "-o", str(tmp_path / "x.csv")]) == 2


def test_money_columns_are_integers_end_to_end(database):
    """No Float or Numeric column anywhere in the schema; statements and entries carry Int64 money."""
    float_columns = [f"{table.name}.{column.name}" for table in metadata.tables.values() for column in table.columns
                     if isinstance(column.type, (Float, Numeric))]
    assert float_columns == []
    assert all(isinstance(column.type, (BigInteger, Integer)) for table in metadata.tables.values()
               for column in table.columns if column.name.endswith("_ucr"))
    finalize(database)
    settle_cycle(database, today_cycle())
    frame = cycle_entries(database, today_cycle().key)
    assert tables.credit_statement(frame).collect().schema["charge_ucr"] == pl.Int64
    assert all(type(row["amount_ucr"]) is int for row in entries(database))


def test_a_new_rate_card_version_never_changes_a_settled_amount(database):
    """The usage record names its rate card version and settlement prices the split with that version."""
    usage = finalize(database)
    settle_cycle(database, today_cycle())
    memo_versions = {row["memo"] for row in entries(database, kind="settlement")}
    assert all(f'"rate_card_version":"{usage["rate_card_version"]}"' in memo for memo in memo_versions)
    customer = [row for row in entries(database, kind="settlement") if row["account"].startswith("customer:")]
    assert -customer[0]["amount_ucr"] == usage["charge_ucr"]


def _settle_in_process(url: str, cycle_key: str, start: str, end: str) -> int:
    os.environ["FORGE_DATABASE_URL"] = url
    from forge_pipeline.settle.settlement import Cycle
    dispose_engines()
    return settle_cycle(open_engine(url), Cycle(cycle_key, start, end))["newly_posted"]


@pytest.mark.postgres
def test_eight_concurrent_settlements_post_exactly_one_set(forge_home, postgres_server_url, monkeypatch):
    """Eight processes settle the same cycle at once on PostgreSQL: one set of transactions, chain intact."""
    monkeypatch.setenv("FORGE_DATABASE_URL", postgres_server_url)
    engine = open_engine(postgres_server_url)
    for i in range(6):
        finalize(engine, request_id=f"c-{i}")
    cycle = today_cycle()
    dispose_engines()
    with multiprocessing.get_context("spawn").Pool(8) as workers:
        posted = workers.starmap(_settle_in_process, [(postgres_server_url, cycle.key, cycle.start, cycle.end)] * 8)
    assert sum(posted) == 6
    engine = open_engine(postgres_server_url)
    assert len({row["transaction_id"] for row in entries(engine, kind="settlement")}) == 6
    assert verify_chain(engine).ok


def test_settlement_killed_mid_way_leaves_a_verifiable_ledger_and_reruns_to_the_same_totals(database):
    """SIGKILL a settling process once some but not all settlements are posted: the ledger verifies, and
    a rerun settles every workload exactly once."""
    from sqlalchemy import insert

    from benchmarks.settle_cycle import finalized_rows
    from forge_pipeline.settle.settlement import cycle_of
    from forge_pipeline.storage.database import usage_records, workloads
    count, cycle = 1500, cycle_of(__import__("datetime").date(2026, 11, 25))
    workload_rows, usage_rows = finalized_rows(count, "2026-11-25T12:00:00.000000Z")
    with database.begin() as connection:
        connection.execute(insert(workloads), workload_rows)
        connection.execute(insert(usage_records), usage_rows)
    url = database.url.render_as_string(hide_password=False)
    script = ("from forge_pipeline.settle import settlement as s; s.SETTLEMENT_BATCH = 1\n"
              "from forge_pipeline.storage.database import open_engine\n"
              f"s.settle_cycle(open_engine({url!r}), s.Cycle({cycle.key!r}, {cycle.start!r}, {cycle.end!r}))")
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})

    def settled() -> int:
        return len({row["workload_id"] for row in entries(database, kind="settlement")})

    deadline = time.monotonic() + 120
    while settled() < random.randint(5, 50) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = settled()
    assert 0 < interrupted_at < count, "the kill did not land mid-settlement"
    assert verify_chain(database).ok
    settle_cycle(database, cycle)
    customers = [row for row in entries(database, kind="settlement") if row["account"].startswith("customer:")]
    assert len(customers) == count and len({row["workload_id"] for row in customers}) == count
    assert -sum(row["amount_ucr"] for row in customers) == sum(row["charge_ucr"] for row in usage_rows)
    assert verify_chain(database).ok


def test_dispute_after_settlement_refund_reverses_and_upheld_never_bills_twice(database, capsys):
    """A settled workload disputed and refunded is negated in the cycle of the resolution and the statement
    shows it; one resolved without refund is not billed again; re-settling the original cycle still passes
    its checks; resolving what is not disputed is refused (exit 2)."""
    from forge_pipeline.settle.settlement import Cycle
    refunded, upheld = finalize(database, request_id="refund"), finalize(database, request_id="upheld")
    cycle = today_cycle()
    assert settle_cycle(database, cycle)["newly_posted"] == 2
    assert main(["resolve", upheld["workload_id"], "--reason", "no dispute yet"]) == 2
    for usage in (refunded, upheld):
        assert main(["dispute", usage["workload_id"], "--reason", "customer says the output is wrong"]) == 0
    second = settle_through_dagster(cycle.key)  # a dispute after settlement does not fail the cycle's checks
    assert second.success and all(check.passed for check in second.get_asset_check_evaluations())
    assert main(["resolve", refunded["workload_id"], "--reason", "goodwill", "--refund"]) == 0
    assert main(["resolve", upheld["workload_id"], "--reason", "output reproduced by replay"]) == 0
    refund = entries(database, transaction_id=f"refund:{refunded['workload_id']}")
    assert {row["cycle"] for row in refund} == {cycle.key}
    assert sum(row["amount_ucr"] for row in refund if row["account"].startswith("customer:")) == \
        refunded["charge_ucr"]
    statement = tables.credit_statement(cycle_entries(database, cycle.key)).collect().to_dicts()
    assert statement == [{"organization": "acme", "project": "risk", "workspace": "prod", "workloads": 2,
                          "refunds": 1, "charge_ucr": upheld["charge_ucr"]}]
    later = Cycle("2099-01-01", cycle.start, cycle.end)  # a later cycle's key over the window of the resolution
    assert settle_cycle(database, later)["newly_posted"] == 0
    assert verify_chain(database).ok
    assert main(["resolve", refunded["workload_id"], "--reason", "again", "--refund"]) == 2
    assert main(["resolve", "wl_nope", "--reason", "x"]) == 2


def test_cycle_entries_are_the_cycles_settlement_entries_in_sequence_order(database, monkeypatch):
    """Settled over several ledger batches, the cycle's statement frame holds exactly its settlement and refund
    entries as the ledger stores them, typed by ENTRY_SCHEMA and in sequence order; with an organization, only its
    entries; for a cycle with none, an empty typed frame. Other kinds and other cycles stay out."""
    import datetime as dt

    from polars.testing import assert_frame_equal
    from sqlalchemy import insert

    from benchmarks.settle_cycle import finalized_rows
    from forge_pipeline.ledger.ledger import post_transaction
    from forge_pipeline.settle import settlement
    from forge_pipeline.storage.database import usage_records, workloads
    count, cycle = 23, settlement.cycle_of(dt.date(2026, 11, 25))
    workload_rows, usage_rows = finalized_rows(count, "2026-11-25T12:00:00.000000Z")
    with database.begin() as connection:
        connection.execute(insert(workloads), workload_rows)
        connection.execute(insert(usage_records), usage_rows)
    post_transaction(database, "fees:2026-11-25", "correction", [  # the cycle's, but not a settlement
        {"account": "customer:org1/p/w", "amount_ucr": -7, "cycle": cycle.key, "organization": "org1"},
        {"account": "platform:revenue", "amount_ucr": 7, "cycle": cycle.key}])
    post_transaction(database, "settle:elsewhere", "settlement", [  # a settlement of another cycle
        {"account": "customer:org1/p/w", "amount_ucr": -5, "cycle": "2026-11-24", "organization": "org1"},
        {"account": "platform:revenue", "amount_ucr": 5, "cycle": "2026-11-24"}])
    monkeypatch.setattr(settlement, "SETTLEMENT_BATCH", 5)
    assert settlement.settle_cycle(database, cycle)["newly_posted"] == count
    assert settlement.settle_cycle(database, cycle)["newly_posted"] == 0

    def expected(**filters) -> pl.DataFrame:
        rows = [{name: row[name] for name in tables.ENTRY_SCHEMA} for row in entries(database, cycle=cycle.key,
                                                                                         **filters)
                if row["kind"] in tables.SETTLEMENT_KINDS]
        return pl.DataFrame(rows, schema=tables.ENTRY_SCHEMA)

    everything = cycle_entries(database, cycle.key).collect()
    assert everything.height == 4 * count
    assert_frame_equal(everything, expected())
    assert everything["sequence"].is_sorted()
    assert_frame_equal(cycle_entries(database, cycle.key, "org1").collect(), expected(organization="org1"))
    assert cycle_entries(database, cycle.key, "org1").collect().height == 4  # one workload: customer, 2 providers, fee
    assert_frame_equal(cycle_entries(database, "2026-11-26").collect(), pl.DataFrame(schema=tables.ENTRY_SCHEMA))
    charged = tables.credit_statement(cycle_entries(database, cycle.key)).collect()["charge_ucr"].sum()
    assert charged == sum(row["charge_ucr"] for row in usage_rows)
    assert verify_chain(database).ok
