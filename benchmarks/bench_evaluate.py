"""Seconds to evaluate 2,000 vs 2,000 sketches: rendering, Inception features, FID/KID.

    python benchmarks/bench_evaluate.py [--num 2000]

Uses the 75 real drawings in ../shared repeated (and jittered, as the "generated" set) so that it
runs anywhere; features are computed fresh (no cache).
"""

import argparse
import time

import numpy as np
from common import SHARED, machine, peak_rss_mb

from sketch_diffusion.evaluation import render_all
from sketch_diffusion.data import load_strokes
from sketch_diffusion.metrics import fid_kid_from_features, inception_extractor, inception_features, inception_weights
from sketch_diffusion.settings import positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=positive_int, default=2000)
    args = parser.parse_args()
    samples = SHARED / "data" / "quickdraw" / "samples" / "official_simplified_first25"
    real = [s for c in ("cat", "bus", "rabbit") for s in load_strokes(samples / f"{c}.ndjson.gz")]
    real = [real[i % len(real)] for i in range(args.num)]
    rng = np.random.default_rng(0)
    fake = [[s + rng.normal(0, 3, s.shape) for s in sketch] for sketch in real]
    timings = {}
    start = time.perf_counter()
    images = [render_all(real), render_all(fake)]
    timings["render"] = time.perf_counter() - start
    start = time.perf_counter()
    extractor = inception_extractor(inception_weights())
    timings["load Inception"] = time.perf_counter() - start
    start = time.perf_counter()
    features = [inception_features(x, extractor, progress=True) for x in images]
    timings["Inception features"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = fid_kid_from_features(*features)
    timings["FID + KID"] = time.perf_counter() - start
    for name, seconds in timings.items():
        print(f"{name:20s} {seconds:8.1f} s")
    print(f"{'total':20s} {sum(timings.values()):8.1f} s for {args.num} vs {args.num} images  "
          f"(FID {scores['fid']:.2f}, peak memory {peak_rss_mb():.0f} MiB)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
