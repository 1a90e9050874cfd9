"""`make bench`: every figure measured side by side in one run, printed as ratios.

`--quick` shrinks every size (a smoke run of the benchmark code, not figures to report).
"""

import sys

from benchmarks import api, ledger, lifecycle, primitives, settle_cycle, settlement, ui_startup


def line(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    quick = "--quick" in sys.argv
    line("== Philox4x32-10 (NumPy path) vs numpy.random.Philox.random_raw, 32-bit words ==")
    philox = lifecycle.bench_philox(1 << (20 if quick else 24))
    line(f"ours {philox['ours_words_per_s'] / 1e6:.1f} Mwords/s, numpy {philox['numpy_words_per_s'] / 1e6:.1f} "
         f"Mwords/s, ratio {philox['ratio']:.3f} (target >= 0.35)")
    line(primitives.TITLE)
    for name in primitives.REFERENCE_PRIMITIVES:
        for text in primitives.report_lines(name, quick):
            line(text)
    line(primitives.COMPILED_TITLE)
    for text in primitives.compiled_lines(quick):
        line(text)
    # The fixed cost of a Dagster run (~0.5 s here) weighs less as the workload grows: three sizes show it.
    sizes = [(2_000_000, "none")] if quick else [(100_000_000, "none"), (100_000_000, "replay_sample"),
                                                 (400_000_000, "none"), (1_000_000_000, "none")]
    for draws, verification in sizes:
        line(f"== lifecycle through Dagster / kernel-only, verification {verification} ==")
        measured = lifecycle.bench_lifecycle(draws, verification)
        line(f"{measured['draws']:,} draws, {measured['shards']} shards: kernel {measured['kernel_s']:.2f} s, "
             f"lifecycle {measured['lifecycle_s']:.2f} s, ratio {measured['ratio']:.3f} (target <= 1.2)")
    line("== small workloads: `forge-pool run` (embedded default, batched) / the core lifecycle without Dagster ==")
    small = lifecycle.bench_small_workloads(20 if quick else 200)
    line(f"{small['workloads']} workloads: core {small['core_s']:.1f} s, forge-pool run {small['forge_pool_run_s']:.1f} s, "
         f"factor {small['factor']:.2f} (target <= 2); {small['per_hour']:,.0f} workloads/hour (target >= 30,000)")
    line("== intake sensor tick with many workload partitions (persistent SQLite instance) ==")
    scale = lifecycle.bench_sensor_at_scale(10_000 if quick else 100_000)
    line(f"{scale['partitions']:,} partitions: sensor tick {scale['sensor_tick_s']:.3f} s; listing every partition "
         f"(what the tick avoids) {scale['listing_s']:.2f} s")
    line("== launch-to-Finalized of a tiny workload from the sensor (dagster-daemon, no command) ==")
    latency = lifecycle.bench_sensor_latency(1 if quick else 3)
    line(f"daemon warm-up {latency['warm_up_s']:.1f} s; latencies {', '.join(f'{s:.1f}' for s in latency['latencies_s'])} s, "
         f"worst {latency['worst_s']:.1f} s (target <= 10 s)")
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
    line("== Web Core API on loopback: POST /v1/workloads vs authenticated GET /healthz, one server, 8 connections ==")
    for database in ("sqlite", "postgres"):
        measured = api.bench_api(database, 200 if quick else 3_000)
        submit, health = measured["submit"], measured["healthz"]
        line(f"{database:<8} submit {submit['per_s']}/s p50 {submit['p50_ms']} ms p99 {submit['p99_ms']} ms; healthz "
             f"{health['per_s']}/s p50 {health['p50_ms']} ms p99 {health['p99_ms']} ms; submit/healthz throughput "
             f"ratio {measured['throughput_ratio']:.3f} (target on postgres: >= 500/s, p99 <= 50 ms)")
    line("== seconds from `forge-pool ui` to a UI that answers, beside plain `dagster dev` (fresh home) ==")
    startup = ui_startup.bench_ui_startup(1 if quick else 3)
    line(f"forge-pool ui {startup['forge_pool_ui_s']:.1f} s, dagster dev {startup['dagster_dev_s']:.1f} s "
         f"(median of {startup['repeats']}), ratio {startup['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
