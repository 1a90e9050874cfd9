"""Postings shared by the ledger tests, and the entry points of their worker processes
(module-level, so multiprocessing's spawn start method can import them)."""

from __future__ import annotations

import hashlib
import json
import random

from forge_pipeline.ledger.ledger import Transaction, post_transaction, post_transactions
from forge_pipeline.storage.database import open_engine

CYCLE = "2026-11-25"


def settlement(index: int) -> Transaction:
    """A workload's settlement: the customer pays, a provider and the platform are paid."""
    charge_ucr = 1_000_003 + 7 * index
    payout_ucr = charge_ucr * 7 // 10
    workload_id = f"wl{index:05d}"
    return Transaction(f"settle:{workload_id}", "settlement", [
        {"account": "customer:acme/risk/prod", "amount_ucr": -charge_ucr, "workload_id": workload_id, "cycle": CYCLE,
         "organization": "acme", "project": "risk", "workspace": "prod", "memo": {"work_units": 1_000 + index}},
        {"account": f"provider:p{index % 3}", "amount_ucr": payout_ucr, "workload_id": workload_id, "cycle": CYCLE,
         "provider_id": f"p{index % 3}"},
        {"account": "platform:revenue", "amount_ucr": charge_ucr - payout_ucr, "workload_id": workload_id,
         "cycle": CYCLE},
    ])


def reference_entry_hash(row: dict) -> str:
    """The documented formula the plain way: sha256 of prev_hash (ASCII) and the json.dumps, sorted keys, no
    whitespace, UTF-8, of every column of the row but entry_hash."""
    body = {name: value for name, value in row.items() if name != "entry_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(row["prev_hash"].encode("ascii") + canonical).hexdigest()


def balances(rows: list[dict]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["account"]] = totals.get(row["account"], 0) + row["amount_ucr"]
    return totals


def post_one_by_one(url: str, count: int) -> None:
    """Post settlements 0..count-1, one database transaction each (the crash test's victim)."""
    engine = open_engine(url)
    for index in range(count):
        post_transaction(engine, **vars(settlement(index)))


def race(url: str, count: int, seed: int, ready, go, results) -> None:
    """Post the same `count` settlements as every other racer, in an order of its own,
    singly (even seed) or in batches of five (odd seed); report the ids it posted."""
    engine = open_engine(url)
    transactions = [settlement(index) for index in range(count)]
    random.Random(seed).shuffle(transactions)
    ready.put(seed)
    go.wait()
    posted = []
    batch_size = 1 if seed % 2 == 0 else 5
    for start in range(0, count, batch_size):
        batch = transactions[start:start + batch_size]
        posted += [transaction.transaction_id
                   for transaction, new in zip(batch, post_transactions(engine, batch), strict=True) if new]
    results.put(posted)
