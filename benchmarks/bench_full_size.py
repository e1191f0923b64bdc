"""The data path at the official files' size: a 155,288-drawing rabbit file (the official rabbit file's count),
made by repeating the 25 real rabbits of ../shared with distinct key ids.

    python benchmarks/bench_full_size.py [--drawings 155288] [--steps 1]

Prints the file's size, the time to read and validate it, to build the Arrow cache of the official split's 12,000
drawings (and of every drawing), to load the cache again, and train.py's time to its first steps with peak memory.
"""

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SHARED, machine

from sketch_diffusion.data import build_dataset, read_drawings
from sketch_diffusion.download import SPLIT_TEST_SIZE, SPLIT_TRAIN_SIZE
from sketch_diffusion.settings import positive_int


def timed(label, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:62s} {time.perf_counter() - start:7.1f} s")
    return result


def run_with_peak_memory(command) -> float:
    """Run ``command`` to completion; return its peak resident memory in MiB, sampled every 50 ms (a child's own
    ``ru_maxrss`` would start from this process's, which it inherits across fork and exec)."""
    import psutil

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    if process.wait() != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drawings", type=positive_int, default=155_288)
    parser.add_argument("--steps", type=positive_int, default=1, help="train.py steps to time")
    args = parser.parse_args()
    sample = SHARED / "data" / "quickdraw" / "samples" / "official_simplified_first25" / "rabbit.ndjson.gz"
    records = [json.loads(line) for line in gzip.open(sample, "rt")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "rabbit.ndjson"
        with open(data, "w") as f:
            for i in range(args.drawings):
                f.write(json.dumps(dict(records[i % len(records)], key_id=str(i))) + "\n")
        print(f"file: {args.drawings:,} drawings, {data.stat().st_size / 1e6:.0f} MB")
        timed("read + validate every line", lambda: sum(1 for _ in read_drawings(data)))
        import numpy as np

        rng = np.random.RandomState(2)  # the official split's recipe: 12,000 indices drawn with replacement
        indices = rng.randint(0, args.drawings, size=SPLIT_TRAIN_SIZE + SPLIT_TEST_SIZE).tolist()
        split = {"train": indices[:SPLIT_TRAIN_SIZE], "test": indices[SPLIT_TRAIN_SIZE:]}
        (tmp / "split.json").write_text(json.dumps(split))
        cache = tmp / "cache"
        timed("Arrow cache of the 12,000-drawing split (first build)", lambda: build_dataset(data, split, cache))
        timed("Arrow cache of the split (loaded again)", lambda: build_dataset(data, split, cache))
        every = {"train": list(range(args.drawings)), "test": []}
        timed(f"Arrow cache of all {args.drawings:,} drawings (first build)", lambda: build_dataset(data, every, cache))
        print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        for split_arg in (str(tmp / "split.json"), "all"):
            command = [sys.executable, str(REPO / "train.py"), "--category", "rabbit", "--data", str(data), "--split",
                       split_arg, "--output-dir", str(tmp / "run"), "--cache-dir", str(tmp / "train_cache"),
                       "--max-steps", str(args.steps), "--sample-interval", "0", "--checkpointing-steps", "1000000"]
            start = time.perf_counter()
            peak = run_with_peak_memory(command)
            label = f"train.py --split {'FILE (12,000)' if split_arg != 'all' else 'all'}, {args.steps} step(s), cold cache"
            print(f"{label:62s} {time.perf_counter() - start:7.1f} s  (peak memory {peak:.0f} MiB)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
