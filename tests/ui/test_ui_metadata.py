"""What the Dagster UI shows for workloads and cycles, through real Dagster runs on a SQLite home."""

import base64
import datetime as dt
import json
import re

import polars as pl
from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from forge_pipeline.definitions import defs, resources
from forge_pipeline.intake.request import validate_request
from forge_pipeline.orchestration.billing_assets import BILLING_ASSETS
from forge_pipeline.orchestration.workload_assets import WORKLOAD_ASSETS, workload_partitions
from forge_pipeline.settle.settlement import cycle_of
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import list_workload_ids, load_workload, store_request, usage_record_of
from tests.lifecycle.requests import request

WORKLOAD_KEYS = [AssetKey(name) for name in ("workload_request", "execution_plan", "shard_executions",
                                             "verification_report", "evidence_bundle", "usage_record")]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def finalized(instance: DagsterInstance) -> str:
    workload_id, _ = store_request(open_engine(), validate_request(request()))
    instance.add_dynamic_partitions(workload_partitions.name, [workload_id])
    assert materialize(WORKLOAD_ASSETS, partition_key=workload_id, instance=instance, resources=resources()).success
    return workload_id


def latest_metadata(instance: DagsterInstance, name: str) -> dict:
    return instance.get_latest_materialization_event(AssetKey(name)).asset_materialization.metadata


def inline_png(markdown: str) -> bytes:
    return base64.b64decode(re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown).group(1))


def test_a_refused_relaunch_of_a_finalized_workload_succeeds_and_leaves_its_assets_as_they_were(forge_home):
    """Re-launching a Finalized workload's lifecycle materializes nothing, fails nothing (no partition turns
    failed in the status the UI draws), keeps the workload Finalized, and its log points to the replay job."""
    instance = DagsterInstance.ephemeral()
    workload_id = finalized(instance)
    before = {key: instance.get_latest_materialization_event(key).run_id for key in WORKLOAD_KEYS}
    again = materialize(WORKLOAD_ASSETS, partition_key=workload_id, instance=instance, resources=resources(),
                        raise_on_error=False)
    assert again.success and again.get_asset_materialization_events() == []
    assert {key: instance.get_latest_materialization_event(key).run_id for key in WORKLOAD_KEYS} == before
    for key in WORKLOAD_KEYS:
        status = get_and_update_asset_status_cache_value(instance, key, workload_partitions)
        assert workload_id not in status.deserialize_failed_partition_subsets(workload_partitions).get_partition_keys()
        assert workload_id in status.deserialize_materialized_partition_subsets(workload_partitions).get_partition_keys()
    assert load_workload(open_engine(), workload_id)["state"] == "Finalized"
    messages = [record.user_message for record in instance.all_logs(again.run_id)]
    assert any("nothing materialized" in message and f"replay_workload job on partition {workload_id}" in message
               for message in messages)


def test_usage_record_shows_the_charge_its_components_rate_card_and_payout_split(forge_home):
    """usage_record metadata: charge in µcr and exact credits, components and payout split as tables whose
    TOTAL rows equal the charge, the rate card version, and the Plots tab's comparable integers."""
    instance = DagsterInstance.ephemeral()
    workload_id = finalized(instance)
    record = usage_record_of(open_engine(), workload_id)
    metadata = latest_metadata(instance, "usage_record")
    assert metadata["charge_ucr"].value == record["charge_ucr"] > 0
    whole, fraction = divmod(record["charge_ucr"], 1_000_000)
    assert metadata["charge_credits"].value == f"{whole:,}.{fraction:06d}"
    assert metadata["rate_card_version"].value == record["rate_card_version"]
    for name in ("charge_components", "payout_split"):
        rows = [row.data for row in metadata[name].value.records]
        label = "component" if name == "charge_components" else "party"
        assert rows[-1][label] == "TOTAL" and rows[-1]["amount_ucr"] == record["charge_ucr"]
        assert sum(row["amount_ucr"] for row in rows[:-1]) == record["charge_ucr"]
    parties = {row.data["party"] for row in metadata["payout_split"].value.records}
    assert {f"provider:{p}" for p in record["verified_work_units_by_provider"]} | {"platform:fee", "TOTAL"} >= parties
    assert isinstance(metadata["wall_ms_total"].value, int) and metadata["rejected_shards"].value == 0
    assert metadata["work_units"].value == record["work_units"]
    assert metadata["primitive"].value == record["primitive"] and metadata["organization"].value == "acme"


def test_portfolio_loss_evidence_carries_its_loss_distribution_picture(forge_home):
    """evidence_bundle metadata has an inline PNG (the loss distribution) and no family-specific numbers at
    the top level, where the Plots tab would draw them beside other families' numbers."""
    instance = DagsterInstance.ephemeral()
    finalized(instance)
    metadata = latest_metadata(instance, "evidence_bundle")
    assert inline_png(metadata["picture"].value).startswith(PNG_SIGNATURE)
    assert {"scenarios", "loss_total", "loss_max"} <= metadata["output_facts"].value.keys()
    assert not {"scenarios", "loss_total", "loss_max"} & metadata.keys()


def test_settlement_shows_reconciliation_table_and_statements_with_totals_and_parquet_paths(forge_home):
    """A settled cycle: reconciliation as a Dagster table; statement and payouts tables end in a TOTAL row
    with credits beside µcr, carry a picture, and name the Parquet file that holds the rows."""
    instance = DagsterInstance.ephemeral()
    workload_id = finalized(instance)
    cycle = cycle_of(dt.datetime.now(dt.timezone.utc).date()).key
    assert materialize(BILLING_ASSETS, partition_key=cycle, instance=instance, resources=resources(),
                       selection=BILLING_ASSETS).success
    charge = usage_record_of(open_engine(), workload_id)["charge_ucr"]
    reconciliation = latest_metadata(instance, "settlement_postings")["reconciliation"].value
    assert [column.name for column in reconciliation.schema.columns] == ["cycle", "charge_ucr", "payout_ucr",
                                                                         "platform_fee_ucr", "balanced"]
    assert [(row.data["charge_ucr"], row.data["balanced"]) for row in reconciliation.records] == [(charge, True)]
    for name, label, amount in (("credit_statement", "organization", "charge_ucr"),
                                ("provider_payouts", "provider_id", "payout_ucr")):
        metadata = latest_metadata(instance, name)
        rows = [row.data for row in metadata["table"].value.records]
        assert rows[-1][label] == "TOTAL" and rows[-1][amount] == sum(row[amount] for row in rows[:-1])
        total = rows[-1][amount]
        assert rows[-1][amount.replace("_ucr", "_credits")] == f"{total // 10**6:,}.{total % 10**6:06d}"
        parquet = pl.read_parquet(metadata["parquet_path"].value)
        assert parquet.height == len(rows) - 1 and int(parquet[amount].sum()) == rows[-1][amount]
        assert inline_png(metadata["picture"].value).startswith(PNG_SIGNATURE)
    assert latest_metadata(instance, "credit_statement")["charge_ucr_total"].value == charge


def test_the_schedule_is_on_by_default_and_groups_follow_the_lifecycle(forge_home):
    """The billing-cycle schedule starts RUNNING; the UI's group names sort in lifecycle order."""
    from dagster import DefaultScheduleStatus
    assert defs.resolve_schedule_def("billing_cycle_schedule").default_status == DefaultScheduleStatus.RUNNING
    graph = defs.resolve_asset_graph()
    groups = [graph.get(AssetKey(name)).group_name for name in (
        "workload_request", "execution_plan", "shard_executions", "verification_report", "evidence_bundle",
        "usage_record", "settlement_postings", "workload_replay")]
    assert groups == sorted(groups) and len(set(groups)) == len(groups)


def test_a_refused_launchpad_request_fails_with_its_problems_as_a_table(forge_home):
    """The launchpad's submit job refuses a bad request with a Failure whose description and metadata table
    name each field path (the UI shows the table beside the message); nothing is stored."""
    bad = json.dumps(request(request_id="bad", arguments={"bins": -1, "scenarios": 0}))
    result = defs.resolve_job_def("submit_request").execute_in_process(
        run_config={"ops": {"submit_workload_request": {"config": {"document": bad}}}},
        instance=DagsterInstance.ephemeral(), raise_on_error=False)
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data.description.startswith("request refused:\narguments.")
    rows = [row.data for row in failure.user_failure_data.metadata["problems"].records]
    assert {row["field"] for row in rows} == {"arguments.bins", "arguments.scenarios"}
    assert all(row["problem"].startswith("must be >= 1") for row in rows)
    assert list_workload_ids(open_engine()) == []


def test_each_workload_partition_names_its_organization_project_and_primitive(forge_home):
    """A lifecycle run carries a batch of workloads (a partition range: the intake sensor's run requests and
    `forge-pool run`'s runs have range tags, no per-workload tags), so each wl_ partition's workload_request
    materialization says whose work it is: organization, project and primitive in its metadata."""
    from dagster import build_sensor_context

    from forge_pipeline.cli import main
    from forge_pipeline.orchestration.intake import workload_intake_sensor
    from forge_pipeline.orchestration.resources import ForgeDatabaseResource
    from forge_pipeline.orchestration.runs import (ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG,
                                                   forge_instance)

    workload_id, _ = store_request(open_engine(), validate_request(request(organization="globex")))
    range_of_one = {ASSET_PARTITION_RANGE_START_TAG: workload_id, ASSET_PARTITION_RANGE_END_TAG: workload_id}
    context = build_sensor_context(instance=DagsterInstance.ephemeral(),
                                   resources={"database": ForgeDatabaseResource()})
    [run_request] = workload_intake_sensor(context).run_requests
    assert run_request.tags.items() >= range_of_one.items()
    assert main(["run", workload_id]) == 0
    instance = forge_instance()
    [run] = instance.get_runs()
    assert run.tags.items() >= range_of_one.items()
    event = instance.get_latest_materialization_event(AssetKey("workload_request"))
    assert event.asset_materialization.partition == workload_id
    metadata = event.asset_materialization.metadata
    assert {name: metadata[name].value for name in ("organization", "project", "primitive")} == {
        "organization": "globex", "project": "risk", "primitive": "probabilistic_simulation/portfolio_loss@1"}
