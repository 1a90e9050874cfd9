import multiprocessing
import random
import signal
import time

from ledger_helpers import balances, post_one_by_one, settlement

from forge_pipeline.ledger.ledger import entries, verify_chain
from forge_pipeline.storage.database import open_engine

POSTINGS = 1_500
KILLS = 3


def expected_balances() -> dict[str, int]:
    return balances([entry for index in range(POSTINGS) for entry in settlement(index).entries])


def test_killed_writer_leaves_a_verifiable_ledger_and_a_rerun_completes_it(database_url):
    """A writer SIGKILLed at random moments of a long posting loop leaves a ledger that verifies each time; rerunning
    the same postings completes it with the expected totals and no duplicates."""
    engine = open_engine(database_url)
    spawn = multiprocessing.get_context("spawn")
    rng = random.Random()
    for _ in range(KILLS):
        posted_before = len(entries(engine))
        writer = spawn.Process(target=post_one_by_one, args=(database_url, POSTINGS))
        writer.start()
        deadline = time.monotonic() + 60
        while len(entries(engine)) == posted_before:  # killed only once it is posting
            assert writer.is_alive() and time.monotonic() < deadline, "the writer never started posting"
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        writer.kill()
        writer.join()
        assert writer.exitcode == -signal.SIGKILL, "the writer finished before it was killed: nothing was tested"
        result = verify_chain(engine)
        assert result.ok, result
        assert result.entries_checked % 3 == 0  # whole transactions only
    post_one_by_one(database_url, POSTINGS)
    rows = entries(engine)
    assert len(rows) == 3 * POSTINGS
    assert len({row["idempotency_key"] for row in rows}) == len(rows)
    assert balances(rows) == expected_balances()
    assert verify_chain(engine).ok
