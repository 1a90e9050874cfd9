"""`make bench`: every figure measured side by side in one run, printed as ratios.

`--quick` shrinks every size (a smoke run of the benchmark code, not figures to report).
"""

import sys

from benchmarks import ledger, lifecycle, primitives, settle_cycle, settlement
from forge_pipeline.execute.primitives import PRIMITIVES


def line(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    quick = "--quick" in sys.argv
    line("== Philox4x32-10 (NumPy path) vs numpy.random.Philox.random_raw, 32-bit words ==")
    philox = lifecycle.bench_philox(1 << (20 if quick else 24))
    line(f"ours {philox['ours_words_per_s'] / 1e6:.1f} Mwords/s, numpy {philox['numpy_words_per_s'] / 1e6:.1f} "
         f"Mwords/s, ratio {philox['ratio']:.3f} (target >= 0.35)")
    line(primitives.TITLE)
    for name in PRIMITIVES:
        for text in primitives.report_lines(name, quick):
            line(text)
    # The fixed cost of a Dagster run (~0.5 s here) weighs less as the workload grows: three sizes show it.
    sizes = [(2_000_000, "none")] if quick else [(100_000_000, "none"), (100_000_000, "replay_sample"),
                                                 (400_000_000, "none"), (1_000_000_000, "none")]
    for draws, verification in sizes:
        line(f"== lifecycle through Dagster / kernel-only, verification {verification} ==")
        measured = lifecycle.bench_lifecycle(draws, verification)
        line(f"{measured['draws']:,} draws, {measured['shards']} shards: kernel {measured['kernel_s']:.2f} s, "
             f"lifecycle {measured['lifecycle_s']:.2f} s, ratio {measured['ratio']:.3f} (target <= 1.2)")
    line(f"== verification overhead ({lifecycle.VERIFICATION_SHARDS} shards, Agents with established records): "
         "lifecycle wall time per mode / mode none; replay / original run ==")
    verification = lifecycle.bench_verification(4_000_000 if quick else 100_000_000)
    for mode, ratio in verification["ratios"].items():
        line(f"{mode:<18} {verification['seconds'][mode]:.2f} s  ratio {ratio:.3f}")
    line(f"targets: replay_sample at 10% <= 1.15, multi_node k=2 <= 2.1; replay {verification['replay_s']:.2f} s, "
         f"ratio to the original run {verification['replay_ratio']:.3f} (target <= 1.1)")
    line("== ledger posting with the hash chain, Ed25519 signature and Merkle tree vs raw sqlite3 executemany "
         "of the same rows ==")
    posting = ledger.bench_posting(20_000 if quick else 200_000)
    line(f"{posting['entries']:,} entries: ledger {posting['ledger_entries_per_second']:,}/s, raw sqlite3 "
         f"{posting['raw_entries_per_second']:,}/s, ratio {posting['ledger_to_raw_ratio']:.3f} (target >= 0.5)")
    line("== ledger verify (chain, signatures, checkpoint) vs reading the rows alone; inclusion proofs ==")
    audit = ledger.bench_verify_and_prove(20_000 if quick else 1_000_000)
    line(f"{audit['entries']:,} entries: verify {audit['verify_s']:.2f} s (chain alone {audit['chain_only_s']:.2f} s), "
         f"reading the rows {audit['read_s']:.2f} s, ratio {audit['verify_to_read_ratio']:.2f}")
    for size, proof in audit["proofs"].items():
        line(f"inclusion proof at {size:,} entries: {proof['prove_us']:.1f} us to prove, {proof['verify_us']:.1f} us "
             f"to verify, {proof['path_length']} hashes (tree built in {proof['tree_build_s']:.2f} s)")
    line("== settling one billing cycle end to end: ledger postings (4 entries per workload) + statements ==")
    cycle = settle_cycle.bench_settle_cycle(5_000 if quick else 1_000_000)
    line(f"{cycle['workloads']:,} finalized workloads: postings {cycle['posting_s']:.1f} s, with statements "
         f"{cycle['total_s']:.1f} s (target <= 60 s for 10^6)")
    line("== settlement tables: Polars vs plain Python group-by on the same ledger rows ==")
    tables = settlement.bench_settlement(100_000 if quick else 1_000_000)
    line(f"{tables['records']:,} settlement ledger rows: Polars {tables['polars_s']:.3f} s, plain Python "
         f"{tables['python_s']:.3f} s, speed-up {tables['speedup']:.1f}x (target >= 10x); generated and computed "
         f"end to end in {tables['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
