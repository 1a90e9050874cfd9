"""Audits behind the blocking settlement checks: read-only queries over the ledger."""

from sqlalchemy import Engine, func, select

from forge_pipeline.states import State
from forge_pipeline.storage.database import ledger_entries, workload_events


def unbalanced_transactions(engine: Engine) -> list[str]:
    query = (select(ledger_entries.c.transaction_id).group_by(ledger_entries.c.transaction_id)
             .having(func.sum(ledger_entries.c.amount_ucr) != 0))
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def settled_workloads_not_finalized(engine: Engine, cycle_key: str) -> dict[str, str | None]:
    """{workload_id: state} for workloads billed in the cycle that were not Finalized when their
    settlement was posted (their state then is the latest event at or before the posting). A
    dispute filed after settlement is legitimate and is not reported."""
    state_when_posted = (select(workload_events.c.to_state)
                         .where(workload_events.c.workload_id == ledger_entries.c.workload_id,
                                workload_events.c.at <= ledger_entries.c.recorded_at)
                         .order_by(workload_events.c.event_id.desc()).limit(1).scalar_subquery())
    query = select(ledger_entries.c.workload_id, state_when_posted).where(
        ledger_entries.c.cycle == cycle_key, ledger_entries.c.kind == "settlement",
        ledger_entries.c.account.like("customer:%"))
    with engine.connect() as connection:
        return {workload_id: state for workload_id, state in connection.execute(query)
                if state != State.FINALIZED.value}
