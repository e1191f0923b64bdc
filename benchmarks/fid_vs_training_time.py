"""FID/KID of a training run's checkpoints against its test split: the curve of quality against training time.

    python benchmarks/fid_vs_training_time.py --run models/rabbit --checkpoints models/rabbit/checkpoints \\
        --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --num-samples 500 \\
        --out results/rabbit_fid_vs_time.json

Each checkpoint is exported with ``train.py --config RUN/training_config.json --export-only`` and
scored with ``evaluate.py``. Training time is cumulative over resumed segments, read from the run's
``logs/train_log.jsonl``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO

from sketch_diffusion.fileio import write_json_atomic
from sketch_diffusion.settings import positive_int


def cumulative_seconds(log_file: Path) -> dict[int, float]:
    """Step -> training seconds since the start of the run, across resumed segments.

    A resumed segment logs again from its checkpoint's step + 1. Runs whose checkpoints record the
    training time continue the clock; older ones restart it, so their segment is offset by the time
    logged at the checkpoint's step. A step logged twice keeps its last (redone) value.
    """
    seconds, offset, last_step, last_raw = {}, 0.0, 0, 0.0
    for line in log_file.read_text().splitlines():
        entry = json.loads(line)
        step, raw = entry["step"], entry["elapsed_seconds"]
        if step <= last_step or raw < last_raw:  # a resumed segment: steps redone, or its clock restarted
            resumed_from = seconds.get(step - 1, 0.0)
            offset = resumed_from if raw < resumed_from else 0.0
        elif offset and raw >= seconds.get(step - 1, float("inf")):  # resumed from a checkpoint that kept the clock
            offset = 0.0
        seconds[step] = offset + raw
        last_step, last_raw = step, raw
    return seconds


def run_step(command: list[str]) -> None:
    """Run one export or evaluation; on failure, stop with its own error output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command[1:3])} ... failed:\n{result.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="the train.py output folder (for training_config.json and logs)")
    parser.add_argument("--checkpoints", required=True, help="folder of checkpoint-N folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--category", default="rabbit")
    parser.add_argument("--num-samples", type=positive_int, default=500)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, nargs="+", help="only these checkpoints (default: every one found)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    run = Path(args.run)
    for flag, path in (("--run", run / "training_config.json"), ("--data", Path(args.data)),
                       ("--split", Path(args.split))):
        if not path.is_file():
            parser.error(f"{flag}: {path} is not there")
    config = json.loads((run / "training_config.json").read_text())
    seconds = cumulative_seconds(run / "logs" / "train_log.jsonl")
    checkpoints = sorted(Path(args.checkpoints).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if args.steps:
        checkpoints = [c for c in checkpoints if int(c.name.split("-")[1]) in args.steps]
        missing = set(args.steps) - {int(c.name.split("-")[1]) for c in checkpoints}
        if missing:
            parser.error(f"no checkpoint for steps {sorted(missing)} in {args.checkpoints}")
    if not checkpoints:
        parser.error(f"--checkpoints {args.checkpoints} holds no checkpoint-N folder: nothing written to {args.out}")
    rows = []
    for ckpt in checkpoints:
        step = int(ckpt.name.split("-")[1])
        with tempfile.TemporaryDirectory() as tmp:
            export = [sys.executable, str(REPO / "train.py"), "--config", str(run / "training_config.json"),
                      "--category", config["category"], "--output-dir", tmp, "--export-only",
                      "--resume-from-checkpoint", str(ckpt), "--logger", "none"]
            run_step(export)
            metrics_file = Path(tmp) / "metrics.json"
            evaluate = [sys.executable, str(REPO / "evaluate.py"), "--model", tmp, "--category", args.category,
                        "--data", args.data, "--split", args.split, "--num-samples", str(args.num_samples),
                        "--out", str(metrics_file)] + (["--cache-dir", args.cache_dir] if args.cache_dir else [])
            run_step(evaluate)
            m = json.loads(metrics_file.read_text())
        rows.append({"step": step, "training_minutes": round(seconds.get(step, float("nan")) / 60, 1),
                     "fid": m["fid"], "kid_mean": m["kid_mean"], "kid_std": m["kid_std"], "num_generated": m["num_generated"]})
        print(f"step {step:5d}  {rows[-1]['training_minutes']:6.1f} min  FID {m['fid']:7.2f}  KID {m['kid_mean']:.4f}",
              flush=True)
    write_json_atomic(args.out, {"run": str(run), "num_samples": args.num_samples, "curve": rows})


if __name__ == "__main__":
    main()
