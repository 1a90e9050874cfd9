"""Money for finalized workloads: charge at finalization, settle per billing cycle.

At finalization a workload is priced with the current rate card (its version stored on
the usage record) and two ledger transactions are posted: `workload:<id>` (the usage
record itself, a zero-amount entry on `record:workload` that puts it in the hash chain)
and, when attempts failed or were rejected, `nonbillable:<id>` (what they would have
cost, from `platform:fault_cost` to `platform:fault_absorbed`: visible, never billed).

A workload belongs to the cycle in which it (last) became Finalized: a dispute holds it
out, and its resolution settles it in the cycle of the resolution, so a closed cycle's
statements never change. Settlement posts one balanced transaction `settle:<id>` per
workload (customer −charge, each provider +payout, `platform:revenue` +fee); posting is
idempotent, so settling a cycle again posts nothing and gives the same statements.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass

import polars as pl
from sqlalchemy import Engine, exists, literal, select

from forge_pipeline.canonical import canonical_json
from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.ledger.ledger import Transaction, entries, post_transaction, post_transactions
from forge_pipeline.settle.pricing import Charge, apply_budget_cap, estimate_charge, price_workload
from forge_pipeline.settle.rate_card import load_rate_card
from forge_pipeline.settle.split import settle_workload
from forge_pipeline.settle.tables import ENTRY_SCHEMA, SETTLEMENT_KINDS
from forge_pipeline.states import State
from forge_pipeline.storage.database import ledger_entries, usage_records, workloads
from forge_pipeline.storage.records import load_workload, transition

CADENCES = ("daily", "monthly")
BILLING_START = dt.date(2026, 1, 1)  # the first billing cycle


def billing_cadence() -> str:
    """FORGE_BILLING_CYCLE: daily (the default) or monthly; a configuration change, not a code edit."""
    cadence = os.environ.get("FORGE_BILLING_CYCLE", "daily")
    if cadence not in CADENCES:
        raise ValueError(f"FORGE_BILLING_CYCLE must be one of {', '.join(CADENCES)}, got {cadence!r}")
    return cadence
SETTLEMENT_BATCH = 10_000  # workloads per ledger write: bounded memory, one lock per batch
ENTRY_ROWS_PER_FETCH = 100_000  # ledger rows per cursor fetch when reading a cycle: bounded Python objects


@dataclass(frozen=True)
class Cycle:
    key: str  # the billing-cycle partition key: the cycle's first day, YYYY-MM-DD
    start: str  # UTC ISO text, inclusive
    end: str  # UTC ISO text, exclusive


def cycle_of(day: dt.date, cadence: str | None = None) -> Cycle:
    cadence = cadence or billing_cadence()
    if cadence not in CADENCES:
        raise ValueError(f"billing cadence must be one of {', '.join(CADENCES)}, got {cadence!r}")
    first = day if cadence == "daily" else day.replace(day=1)
    following = first + dt.timedelta(days=1) if cadence == "daily" else (first + dt.timedelta(days=32)).replace(day=1)
    return Cycle(first.isoformat(), f"{first.isoformat()}T00:00:00.000000Z", f"{following.isoformat()}T00:00:00.000000Z")


def parse_cycle(text: str) -> str:
    """The key of the billing cycle holding the date `text` (YYYY-MM-DD), between BILLING_START and
    today (the open cycle); RequestInvalid (path `cycle`) otherwise."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise RequestInvalid([Problem("cycle", f"must be a date YYYY-MM-DD, got {text!r}")]) from None
    today = dt.datetime.now(dt.timezone.utc).date()
    if not BILLING_START <= day <= today:
        raise RequestInvalid([Problem("cycle", f"{text} is outside the billing cycles, {BILLING_START} to today "
                                               f"({today}, the open cycle)")])
    return cycle_of(day).key


def planned_estimate(document: dict, plan: dict) -> Charge:
    """The charge known at planning (the current rate card; no output yet, so no artifact or
    retention price), before the budget cap."""
    return estimate_charge(load_rate_card(), plan["primitive"], document["profile"],
                           plan["verification"]["mode"], plan["work_units"], len(plan["shards"]))


def check_budget(document: dict, plan: dict) -> None:
    """Refuse at planning (BudgetExceeded) a workload whose known charge is over its cap."""
    apply_budget_cap(planned_estimate(document, plan), document["policy"]["max_credits_ucr"])


def price_finalized(document: dict, plan: dict, nonbillable_units: int, output: dict,
                    rate_card_version: str | None = None) -> Charge:
    """The charge for the verified work (with the current rate card, or the recorded one on
    replay); failed and rejected attempts' units are priced as non-billable only."""
    charge = price_workload(load_rate_card(rate_card_version), plan["primitive"], document["profile"],
                            plan["verification"]["mode"], plan["work_units"], len(plan["shards"]),
                            len(canonical_json(output)), nonbillable_units)
    return apply_budget_cap(charge, document["policy"]["max_credits_ucr"])


def post_workload_record(engine: Engine, record: dict) -> None:
    """The usage record and its non-billable cost, as ledger transactions (idempotent)."""
    attribution = {key: record[key] for key in ("workload_id", "organization", "project", "workspace")}
    post_transaction(engine, f"workload:{record['workload_id']}", "workload_record",
                     [{"account": "record:workload", "amount_ucr": 0, **attribution, "memo": record}])
    nonbillable_ucr = record["charge"]["nonbillable_ucr"]
    if nonbillable_ucr:
        memo = {"nonbillable_units": record["charge"]["nonbillable_units"]}
        post_transaction(engine, f"nonbillable:{record['workload_id']}", "nonbillable", [
            {"account": "platform:fault_cost", "amount_ucr": -nonbillable_ucr, **attribution, "memo": memo},
            {"account": "platform:fault_absorbed", "amount_ucr": nonbillable_ucr, **attribution, "memo": memo}])


def billable_record_texts(engine: Engine, cycle: Cycle) -> tuple[str, ...]:
    """Usage records (their JSON text) of workloads that are Finalized now, became so within the
    cycle, and were not already settled in another cycle (a dispute upheld after settlement bills
    nothing twice).

    Text, for the caller to parse batch by batch: a million parsed records hold gigabytes, and
    every garbage collection would walk them. A tuple of str is not even walked: the collector
    stops tracking it the first time it looks."""
    settled_elsewhere = exists().where(ledger_entries.c.transaction_id == literal("settle:") + workloads.c.workload_id,
                                       ledger_entries.c.cycle != cycle.key)
    query = (select(usage_records.c.record_json).join(workloads, workloads.c.workload_id == usage_records.c.workload_id)
             .where(workloads.c.state == State.FINALIZED.value, workloads.c.updated_at >= cycle.start,
                    workloads.c.updated_at < cycle.end, ~settled_elsewhere)
             .order_by(usage_records.c.workload_id))
    with engine.connect() as connection:
        return tuple(connection.execute(query).scalars())


def workload_split(record: dict) -> dict:
    """A usage record's provider payouts and platform fee, by its own rate card version (split.settle_workload)."""
    share_bps = load_rate_card(record["rate_card_version"]).provider_share_bps
    return settle_workload(record["charge_ucr"], share_bps, record["verified_work_units_by_provider"])


def settlement_transaction(record: dict, cycle: Cycle) -> Transaction:
    split = workload_split(record)
    common = {"workload_id": record["workload_id"], "cycle": cycle.key, "organization": record["organization"],
              "project": record["project"], "workspace": record["workspace"]}
    memo = {"rate_card_version": record["rate_card_version"], "payout_pool_ucr": split["payout_pool_ucr"],
            "primitive": record["primitive"], "work_units": record["work_units"]}
    customer = f"customer:{record['organization']}/{record['project']}/{record['workspace']}"
    rows = [{"account": customer, "amount_ucr": -split["charge_ucr"], **common, "memo": memo}]
    rows += [{"account": f"provider:{provider}", "amount_ucr": amount, **common, "provider_id": provider, "memo": memo}
             for provider, amount in split["payouts_ucr"].items() if amount]
    rows.append({"account": "platform:revenue", "amount_ucr": split["platform_fee_ucr"], **common, "memo": memo})
    return Transaction(f"settle:{record['workload_id']}", "settlement", rows)


def settle_cycle(engine: Engine, cycle: Cycle) -> dict:
    """Post a settlement for every billable workload of the cycle; returns what was new."""
    texts = billable_record_texts(engine, cycle)
    posted = 0
    for start in range(0, len(texts), SETTLEMENT_BATCH):
        batch = [settlement_transaction(json.loads(text), cycle) for text in texts[start:start + SETTLEMENT_BATCH]]
        posted += sum(post_transactions(engine, batch))
    return {"cycle": cycle.key, "billable_workloads": len(texts), "newly_posted": posted}


MAX_REASON_CHARS = 1_000


def checked_reason(reason: str) -> str:
    """A dispute's or resolution's reason: 1 to MAX_REASON_CHARS printable characters (no newline,
    no terminal escape: it is shown to operators as it is). RequestInvalid (path `reason`) otherwise."""
    if not 1 <= len(reason) <= MAX_REASON_CHARS or not reason.isprintable() or not reason.strip():
        raise RequestInvalid([Problem("reason", f"must be 1 to {MAX_REASON_CHARS} printable characters "
                                                "(no control characters), not blank")])
    return reason


def dispute(engine: Engine, workload_id: str, reason: str) -> None:
    """Hold a Finalized workload out of settlement (Finalized -> Disputed)."""
    checked_reason(reason)
    transition(engine, workload_id, State.DISPUTED, f"disputed: {reason}")


def resolve(engine: Engine, workload_id: str, reason: str, refund: bool) -> bool:
    """End a dispute (Disputed -> Finalized). With `refund`, an already-settled workload's
    settlement is negated by a `refund:<id>` transaction in the cycle of the resolution, so
    that cycle's statements and payouts show it; returns whether one was posted. An
    unsettled workload resolved without refund is settled in the cycle of the resolution."""
    checked_reason(reason)
    state = load_workload(engine, workload_id)["state"]
    if state != State.DISPUTED.value:
        raise ValueError(f"{workload_id} is {state}, not Disputed: there is no dispute to resolve")
    settled = entries(engine, transaction_id=f"settle:{workload_id}")
    if refund and not settled:
        raise ValueError(f"{workload_id} was never settled: there is nothing to refund; leave it Disputed "
                         "to keep it out of settlement, or resolve it without --refund to bill it")
    posted = False
    if refund:
        cycle = cycle_of(dt.datetime.now(dt.timezone.utc).date()).key
        memo = {"refunds": f"settle:{workload_id}", "reason": reason}
        reversal = [{"account": row["account"], "amount_ucr": -row["amount_ucr"], "cycle": cycle, "memo": memo,
                     **{name: row[name] for name in ("workload_id", "organization", "project", "workspace",
                                                     "provider_id")}} for row in settled]
        posted = post_transaction(engine, f"refund:{workload_id}", "refund", reversal)
    transition(engine, workload_id, State.FINALIZED, f"dispute resolved{' with refund' if refund else ''}: {reason}",
               expected=(State.DISPUTED,))
    return posted


def cycle_entries(engine: Engine, cycle_key: str, organization: str | None = None) -> pl.LazyFrame:
    """The cycle's settlement and refund entries as a lazy frame typed by ENTRY_SCHEMA, in sequence order.

    A cycle holds millions of entries, so they come from the driver's own cursor a batch of
    plain tuples at a time, each batch a frame: SQLAlchemy's row objects for all of them cost
    more than the database's work, and so does the database's sort (Polars sorts faster)."""
    query = select(*(ledger_entries.c[name] for name in ENTRY_SCHEMA)).where(
        ledger_entries.c.cycle == cycle_key, ledger_entries.c.kind.in_(SETTLEMENT_KINDS))
    if organization is not None:
        query = query.where(ledger_entries.c.organization == organization)
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    parameters = compiled.params
    if compiled.positional:
        parameters = tuple(parameters[name] for name in compiled.positiontup)
    frames = [pl.DataFrame(schema=ENTRY_SCHEMA)]
    with engine.connect() as connection:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(str(compiled), parameters)
            while rows := cursor.fetchmany(ENTRY_ROWS_PER_FETCH):
                frames.append(pl.DataFrame(rows, schema=ENTRY_SCHEMA, orient="row"))
        finally:
            cursor.close()
    return pl.concat(frames).sort("sequence").lazy()


def statement_lines(entries_frame: pl.LazyFrame) -> pl.LazyFrame:
    """One line per settled (or refunded) workload of a customer: what an organization's export holds."""
    return (entries_frame.filter(pl.col("account").str.starts_with("customer:"))
            .select("cycle", "organization", "project", "workspace", "workload_id", "kind", "transaction_id", "sequence",
                    (-pl.col("amount_ucr")).alias("charge_ucr"))
            .sort("sequence"))


def export_lines(engine: Engine, cycle_key: str, organization: str | None) -> pl.DataFrame:
    """The statement lines of `organization` (None: every one) in the cycle, each carrying the ledger
    checkpoint (canonical JSON) signed for this export, so an auditor proves any line's transaction
    against it (`forge-pool ledger prove TRANSACTION --checkpoint FILE`). What `forge-pool export` and
    the API's export write. Raises LedgerCorrupt when the ledger does not verify (nothing is exported)."""
    from forge_pipeline.ledger.integrity import checkpoint_ledger

    checkpoint = canonical_json(checkpoint_ledger(engine)).decode()
    return (statement_lines(cycle_entries(engine, cycle_key, organization))
            .with_columns(pl.lit(checkpoint).alias("ledger_checkpoint")).collect())
