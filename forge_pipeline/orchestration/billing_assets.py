"""Billing-cycle assets: settlement postings, then the credit statement and provider payouts.

Partitioned by billing cycle (daily by default; FORGE_BILLING_CYCLE=monthly switches).
`usage_record` is a lineage dependency over all workload partitions, so an auditor walks
from a statement line back to the request; the data itself is read from the ledger for
the cycle. Blocking checks on the postings stop the statements when the ledger is wrong.
"""

import datetime as dt
import json

import polars as pl
from dagster import (AllPartitionMapping, AssetCheckResult, AssetCheckSpec, AssetDep, AssetExecutionContext,
                     DailyPartitionsDefinition, DefaultScheduleStatus, Failure, MetadataValue,
                     MonthlyPartitionsDefinition, Output, RunRequest, ScheduleEvaluationContext, asset,
                     define_asset_job, schedule)

from forge_pipeline.ledger.integrity import check_ledger, issue_checkpoint, latest_checkpoint
from forge_pipeline.orchestration.metadata import settlement_table_metadata, table_metadata
from forge_pipeline.orchestration.resources import ArtifactStoreResource, ForgeDatabaseResource
from forge_pipeline.orchestration.workload_assets import usage_record
from forge_pipeline.settle import settlement, tables
from forge_pipeline.settle.audit import settled_workloads_not_finalized, unbalanced_transactions

BILLING_START = settlement.BILLING_START.isoformat()
CADENCE = settlement.billing_cadence()
# end_offset=1 includes the open cycle, so an operator (or the demo) can settle what has
# finalized so far; the schedule settles each cycle once it has closed.
billing_cycles = (DailyPartitionsDefinition(start_date=BILLING_START, end_offset=1) if CADENCE == "daily"
                  else MonthlyPartitionsDefinition(start_date=BILLING_START, end_offset=1))

CHECKS = [
    AssetCheckSpec("ledger_entries_balanced", asset="settlement_postings", blocking=True,
                   description="every ledger transaction sums to zero"),
    AssetCheckSpec("ledger_chain_intact", asset="settlement_postings", blocking=True,
                   description="the hash chain, the hub's signatures, every logged checkpoint and the derived tables "
                               "(usage_records, workloads) verify; the cycle's signed checkpoint is in the metadata"),
    AssetCheckSpec("settlement_postings_reconciled", asset="settlement_postings", blocking=True,
                   description="charges = provider payouts + platform fees for the cycle"),
    AssetCheckSpec("settlement_postings_only_finalized", asset="settlement_postings", blocking=True,
                   description="no workload that was not Finalized when settled (failed, disputed, unverified) is billed"),
]


def cycle_for(context: AssetExecutionContext) -> settlement.Cycle:
    return settlement.cycle_of(dt.date.fromisoformat(context.partition_key), CADENCE)


@asset(partitions_def=billing_cycles, group_name="settle", check_specs=CHECKS,
       deps=[AssetDep(usage_record, partition_mapping=AllPartitionMapping())])
def settlement_postings(context: AssetExecutionContext, database: ForgeDatabaseResource):
    """One balanced ledger transaction per workload finalized in the cycle; re-running posts nothing new."""
    engine = database.engine()
    before = check_ledger(engine)
    if not before.ok:
        raise Failure(description=f"ledger verify failed before settlement, nothing posted: {before.first_problem}",
                      allow_retries=False)
    cycle = cycle_for(context)
    summary = settlement.settle_cycle(engine, cycle)
    frame = settlement.cycle_entries(engine, cycle.key)
    reconciliation = tables.cycle_reconciliation(frame).collect()
    after = check_ledger(engine)
    checkpoint = issue_checkpoint(after.ledger) if after.ok else None
    yield Output(summary, metadata={**summary, "reconciliation": table_metadata(reconciliation),
                                    "ledger_checkpoint": MetadataValue.json(checkpoint or {})})
    unbalanced = unbalanced_transactions(engine)
    yield AssetCheckResult(check_name="ledger_entries_balanced", passed=not unbalanced,
                           metadata={"unbalanced_transactions": len(unbalanced)})
    yield AssetCheckResult(check_name="ledger_chain_intact", passed=after.ok,
                           metadata={"entries_checked": after.ledger.entries_checked,
                                     "head_hash": after.ledger.head_hash, "merkle_root": after.ledger.merkle_root,
                                     "reason": after.first_problem or "intact"})
    yield AssetCheckResult(check_name="settlement_postings_reconciled",
                           passed=bool(reconciliation["balanced"].all()) if reconciliation.height else True)
    not_finalized = settled_workloads_not_finalized(engine, cycle.key)
    yield AssetCheckResult(check_name="settlement_postings_only_finalized", passed=not not_finalized,
                           metadata={"billed_but_not_finalized": MetadataValue.json(not_finalized)})


def write_table(context: AssetExecutionContext, artifacts: ArtifactStoreResource, name: str,
                frame: pl.DataFrame, label_column: str, amount_column: str, title: str) -> dict:
    """The table as Parquet, the ledger's newest signed checkpoint (the settlement's) in its file metadata."""
    directory = artifacts.path() / "settlement" / context.partition_key
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.parquet"
    checkpoint = latest_checkpoint()
    frame.write_parquet(path, metadata={"forge_ledger_checkpoint": json.dumps(checkpoint)})
    context.add_output_metadata({**settlement_table_metadata(frame, path, label_column, amount_column,
                                                             f"{title}, cycle {context.partition_key}"),
                                 "ledger_checkpoint": MetadataValue.json(checkpoint or {})})
    return {"path": str(path), "rows": frame.to_dicts(), "ledger_checkpoint": checkpoint}


@asset(partitions_def=billing_cycles, group_name="settle", deps=[settlement_postings])
def credit_statement(context: AssetExecutionContext, database: ForgeDatabaseResource,
                     artifacts: ArtifactStoreResource) -> dict:
    """Per organization and billing scope: settled workloads and charge in µcr (Parquet)."""
    frame = tables.credit_statement(settlement.cycle_entries(database.engine(), context.partition_key)).collect()
    return write_table(context, artifacts, "credit_statement", frame, "organization", "charge_ucr",
                       "charges by organization")


@asset(partitions_def=billing_cycles, group_name="settle", deps=[settlement_postings])
def provider_payouts(context: AssetExecutionContext, database: ForgeDatabaseResource,
                     artifacts: ArtifactStoreResource) -> dict:
    """Per provider: workloads paid for and payout in µcr (Parquet)."""
    frame = tables.provider_payouts(settlement.cycle_entries(database.engine(), context.partition_key)).collect()
    return write_table(context, artifacts, "provider_payouts", frame, "provider_id", "payout_ucr",
                       "payouts by provider")


BILLING_ASSETS = [settlement_postings, credit_statement, provider_payouts]
settlement_job = define_asset_job("billing_cycle_settlement", selection=BILLING_ASSETS,
                                  description="settle one billing cycle: postings, statements, payouts")


# On from the start: finance should not have to find a switch to get each cycle settled. It runs
# while the daemon does (`forge-pool ui` starts one); `dagster schedule stop` or the UI's toggle stops it.
@schedule(job=settlement_job, cron_schedule="15 0 * * *" if CADENCE == "daily" else "15 0 1 * *",
          execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING)
def billing_cycle_schedule(context: ScheduleEvaluationContext):
    """Shortly after each cycle closes, settle the cycle that just closed."""
    closed_day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
    cycle = settlement.cycle_of(closed_day, CADENCE)
    return RunRequest(run_key=f"settle-{cycle.key}", partition_key=cycle.key)
