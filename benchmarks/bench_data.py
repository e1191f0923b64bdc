"""Parsing + conversion throughput on the real samples: ndjson[.gz] -> validated records -> model arrays.

    python benchmarks/bench_data.py [--repeat 200]
"""

import argparse
import gzip
import tempfile
import time
from pathlib import Path

from common import SHARED, machine

from pipeline.representation import strokes_to_normalized, strokes_to_stroke3
from sketch_diffusion.data import read_drawings, record_strokes
from sketch_diffusion.settings import positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=positive_int, default=200, help="copies of the 75 real drawings")
    args = parser.parse_args()
    samples = SHARED / "data" / "quickdraw" / "samples" / "official_simplified_first25"
    lines = b"".join(gzip.open(samples / f"{c}.ndjson.gz").read() for c in ("cat", "bus", "rabbit"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "repeated.ndjson.gz"
        path.write_bytes(gzip.compress(lines * args.repeat))
        for label, convert in [("parse + validate", False), ("parse + validate + stroke-3 + resample(32)", True)]:
            start, count = time.perf_counter(), 0
            for record in read_drawings(path):
                if convert:
                    strokes = record_strokes(record)
                    strokes_to_stroke3(strokes)
                    strokes_to_normalized(strokes, 32)
                count += 1
            seconds = time.perf_counter() - start
            print(f"{label:45s} {count:7d} drawings  {seconds:6.2f} s  {count / seconds:9.0f} drawings/s")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
