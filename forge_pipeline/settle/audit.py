"""Audits behind the blocking settlement checks: read-only queries over the ledger."""

from sqlalchemy import Engine, func, select

from forge_pipeline.states import State
from forge_pipeline.storage.database import ledger_entries, workloads


def unbalanced_transactions(engine: Engine) -> list[str]:
    query = (select(ledger_entries.c.transaction_id).group_by(ledger_entries.c.transaction_id)
             .having(func.sum(ledger_entries.c.amount_ucr) != 0))
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def settled_workloads_not_finalized(engine: Engine, cycle_key: str) -> dict[str, str]:
    """{workload_id: state} for workloads billed in the cycle whose state is not Finalized,
    net of corrections (a refunded dispute has its settlement reversed)."""
    billed = (select(ledger_entries.c.workload_id)
              .where(ledger_entries.c.cycle == cycle_key, ledger_entries.c.account.like("customer:%"))
              .group_by(ledger_entries.c.workload_id).having(func.sum(ledger_entries.c.amount_ucr) != 0)
              .subquery())
    query = (select(workloads.c.workload_id, workloads.c.state)
             .join(billed, billed.c.workload_id == workloads.c.workload_id)
             .where(workloads.c.state != State.FINALIZED.value))
    with engine.connect() as connection:
        return {row.workload_id: row.state for row in connection.execute(query)}
