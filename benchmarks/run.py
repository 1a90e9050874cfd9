"""`make bench`: every figure measured side by side in one run, printed as ratios."""

import sys

from benchmarks import lifecycle


def line(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    quick = "--quick" in sys.argv
    line("== Philox4x32-10 (NumPy path) vs numpy.random.Philox.random_raw, 32-bit words ==")
    philox = lifecycle.bench_philox(1 << (20 if quick else 24))
    line(f"ours {philox['ours_words_per_s'] / 1e6:.1f} Mwords/s, numpy {philox['numpy_words_per_s'] / 1e6:.1f} "
         f"Mwords/s, ratio {philox['ratio']:.3f} (target >= 0.35)")
    line("== portfolio_loss@1 shard kernel, NumPy path ==")
    kernel = lifecycle.bench_portfolio_kernel(2_000_000 if quick else 20_000_000)
    line(f"{kernel['draws']:,} draws in {kernel['seconds']:.2f} s: {kernel['draws_per_s'] / 1e6:.1f} Mdraws/s")
    for verification in ("none", "replay_sample"):
        line(f"== lifecycle through Dagster / kernel-only, verification {verification} ==")
        measured = lifecycle.bench_lifecycle(2_000_000 if quick else 100_000_000, verification)
        line(f"{measured['draws']:,} draws, {measured['shards']} shards: kernel {measured['kernel_s']:.2f} s, "
             f"lifecycle {measured['lifecycle_s']:.2f} s, ratio {measured['ratio']:.3f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
