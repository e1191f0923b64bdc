"""Training throughput of train.py's default recipe: optimizer steps/s and sketches/s, and peak memory.

    python benchmarks/bench_training.py [--steps 30] [--batch-size 64]

Times the exact loss/backward/step of train.py on random sketches (9 strokes each, the stand-in rabbits' mean)
after a warm-up step; no data loading, which train.py does once up front.
"""

import argparse

from common import machine, peak_rss_mb, training_steps_per_second


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    rate = training_steps_per_second(args.steps, args.batch_size)
    print(f"batch {args.batch_size}: {rate:.2f} steps/s   {rate * args.batch_size:.0f} sketches/s   "
          f"peak memory {peak_rss_mb():.0f} MiB")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
