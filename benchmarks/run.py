"""`make bench`: every figure measured side by side in one run, printed as ratios.

`--quick` shrinks every size (a smoke run of the benchmark code, not figures to report).
"""

import sys

from benchmarks import lifecycle, primitives, settlement
from forge_pipeline.execute.primitives import PRIMITIVES


def line(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    quick = "--quick" in sys.argv
    line("== Philox4x32-10 (NumPy path) vs numpy.random.Philox.random_raw, 32-bit words ==")
    philox = lifecycle.bench_philox(1 << (20 if quick else 24))
    line(f"ours {philox['ours_words_per_s'] / 1e6:.1f} Mwords/s, numpy {philox['numpy_words_per_s'] / 1e6:.1f} "
         f"Mwords/s, ratio {philox['ratio']:.3f} (target >= 0.35)")
    line("== shard kernels: work units/s per primitive ==")
    for name in PRIMITIVES:
        measured = primitives.bench_primitive(name, 2_000_000 if quick else 50_000_000)
        rates = ", ".join(f"{backend} {rate / 1e6:.1f} M{measured['work_unit']}/s"
                          for backend, rate in measured["rates"].items())
        gpu = measured["rates"].get("cupy")
        ratio = f", GPU/CPU {gpu / measured['rates']['numpy']:.1f}x" if gpu else " (no CUDA device: NumPy only)"
        line(f"{name}: {measured['units']:,} units; {rates}{ratio}")
    sizes = [(2_000_000, "none")] if quick else [(100_000_000, "none"), (100_000_000, "replay_sample"),
                                                 (400_000_000, "none")]
    for draws, verification in sizes:
        line(f"== lifecycle through Dagster / kernel-only, verification {verification} ==")
        measured = lifecycle.bench_lifecycle(draws, verification)
        line(f"{measured['draws']:,} draws, {measured['shards']} shards: kernel {measured['kernel_s']:.2f} s, "
             f"lifecycle {measured['lifecycle_s']:.2f} s, ratio {measured['ratio']:.3f} (target <= 1.2)")
    line("== verification overhead: lifecycle wall time per mode / mode none; replay / original run ==")
    verification = lifecycle.bench_verification(4_000_000 if quick else 100_000_000)
    for mode, ratio in verification["ratios"].items():
        line(f"{mode:<18} {verification['seconds'][mode]:.2f} s  ratio {ratio:.3f}")
    line(f"targets: replay_sample at 10% <= 1.15, multi_node k=2 <= 2.1; replay {verification['replay_s']:.2f} s, "
         f"ratio to the original run {verification['replay_ratio']:.3f} (target <= 1.1)")
    line("== settlement tables: Polars vs plain Python group-by on the same ledger rows ==")
    tables = settlement.bench_settlement(100_000 if quick else 1_000_000)
    line(f"{tables['records']:,} settlement ledger rows: Polars {tables['polars_s']:.3f} s, plain Python "
         f"{tables['python_s']:.3f} s, speed-up {tables['speedup']:.1f}x (target >= 10x); generated and computed "
         f"end to end in {tables['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
