"""Training throughput of train.py's default recipe in float32 and under its default autocast, and optionally the
two loss curves of real training runs side by side.

    python benchmarks/bench_training.py [--steps 30] [--batch-size 64]
    python benchmarks/bench_training.py --loss-curve-steps 500 --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json

The first form times the exact loss/backward/step of train.py on random sketches (9 strokes each, the stand-in
rabbits' mean) after a warm-up step; no data loading, which train.py does once up front. The second also runs
``train.py`` twice for that many steps (``--mixed-precision no``, then the default), same seed and data, and prints
each run's steps/s and its mean loss over windows of 50 steps with the window's standard error.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, machine, peak_rss_mb, training_steps_per_second

from sketch_diffusion.training import resolve_mixed_precision
from sketch_diffusion.settings import positive_int

WINDOW = 50


def train_run(precision: str, steps: int, data: str, split: str, out: Path) -> list[dict]:
    """``train.py`` for ``steps`` steps on the rabbit data; its per-step log records."""
    subprocess.run([sys.executable, str(REPO / "train.py"), "--category", "rabbit", "--data", data, "--split", split,
                    "--output-dir", str(out), "--max-steps", str(steps), "--mixed-precision", precision,
                    "--checkpointing-steps", str(steps), "--sample-interval", "0", "--logger", "none"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=positive_int, default=30, help="steps to time on random sketches")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--loss-curve-steps", type=int, default=0, help="also train this many steps twice (0: skip)")
    parser.add_argument("--data", help="ndjson file for --loss-curve-steps (e.g. the stand-in rabbits)")
    parser.add_argument("--split", help="its split JSON")
    args = parser.parse_args()
    if args.loss_curve_steps and not (args.data and args.split):
        parser.error("--loss-curve-steps needs --data and --split")
    default = resolve_mixed_precision("auto")
    precisions = list(dict.fromkeys(["no", default]))  # float32 first; once if the default is float32 too
    print(f"machine: {machine()}")
    rates = {}
    for precision in precisions:
        rates[precision] = training_steps_per_second(args.steps, args.batch_size, precision)
        print(f"random sketches, batch {args.batch_size}, autocast {precision:4s}: {rates[precision]:.2f} steps/s   "
              f"{rates[precision] * args.batch_size:.0f} sketches/s")
    print(f"default ({default}) / float32: {rates[default] / rates['no']:.2f}x   peak memory {peak_rss_mb():.0f} MiB")
    if not args.loss_curve_steps:
        return
    with tempfile.TemporaryDirectory() as tmp:
        logs = {p: train_run(p, args.loss_curve_steps, args.data, args.split, Path(tmp) / p)
                for p in precisions}
    for precision, rows in logs.items():
        elapsed = [r["elapsed_seconds"] for r in rows]
        warm = min(20, len(rows) - 2)
        print(f"train.py, autocast {precision:4s}: {(len(rows) - 1 - warm) / (elapsed[-1] - elapsed[warm]):.2f} steps/s "
              f"after {warm} warm-up steps")
    print(f"mean training loss per {WINDOW} steps (± standard error of the window mean):")
    for start in range(0, args.loss_curve_steps, WINDOW):
        cells = []
        for precision, rows in logs.items():
            window = np.array([r["loss"] for r in rows[start : start + WINDOW]])
            cells.append(f"{precision:4s} {window.mean():.4f} ± {window.std(ddof=1) / np.sqrt(len(window)):.4f}")
        print(f"steps {start + 1:4d}-{min(start + WINDOW, args.loss_curve_steps):4d}   " + "   ".join(cells))


if __name__ == "__main__":
    main()
