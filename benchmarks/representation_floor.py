"""The FID cost of the stroke representation alone: real drawings sent through it, with no model.

    python benchmarks/representation_floor.py --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json --points-per-stroke 32 --out outputs/roundtrip_p32.ndjson
    python evaluate.py --generated outputs/roundtrip_p32.ndjson --category rabbit \\
        --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --out outputs/roundtrip_p32.json

Takes the real train drawings that ``evaluate.py --reference-floor`` scores (seed 0) and sends each through
what a perfect model's strokes go through in the pipeline: cut into pieces if longer than ``--max-stroke-length``
pixels and resampled to P points in [-1, 1] (``--resampling``, as in ``train.py``), then the history step (RDP with
``--epsilon`` pixels, resampled back to P points) and the output step (fit to the canvas, RDP with ``--epsilon``,
integer pixels, pieces joined again). Scored against the test split, this is
the best FID that a model with this representation can reach; its distance to the reference floor is what the
representation costs.
"""

import argparse

import numpy as np

from common import machine  # also puts the repository on sys.path

from evaluate import reference_floor_indices
from pipeline.data import load_split, load_split_sketches
from pipeline.fileio import write_ndjson_atomic
from pipeline.metrics import default_cache_dir
from pipeline.rendering import to_ndjson_record
from pipeline.representation import (RESAMPLING_MODES, join_pieces, raw_to_simplified, simplify_normalized,
                                     split_long_strokes, strokes_to_normalized, unit_to_pixels)


def round_trip(sketch, points_per_stroke: int, resampling: str, epsilon: float,
               max_stroke_length: float = 0.0) -> list[np.ndarray]:
    """Absolute strokes (pixels) -> the pipeline's representation and output form -> absolute strokes (pixels)."""
    normalized = strokes_to_normalized(split_long_strokes(sketch, max_stroke_length), points_per_stroke, resampling)
    normalized = simplify_normalized(normalized, epsilon, resampling)
    simplified = raw_to_simplified([unit_to_pixels(s) for s in normalized], fit=True, epsilon=epsilon)
    return join_pieces(simplified) if max_stroke_length > 0 else simplified


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="ndjson[.gz] with the drawings")
    parser.add_argument("--split", required=True, help="split JSON (train/test line indices)")
    parser.add_argument("--points-per-stroke", type=int, default=32)
    parser.add_argument("--resampling", choices=RESAMPLING_MODES, default="arc_length",
                        help="how strokes become points (train.py --resampling)")
    parser.add_argument("--max-stroke-length", type=float, default=0.0,
                        help="cut longer strokes into pieces first (canvas pixels; train.py --max-stroke-length)")
    parser.add_argument("--epsilon", type=float, default=2.0, help="RDP tolerance in pixels (the pipeline's "
                                                                   "simplify_epsilon)")
    parser.add_argument("--seed", type=int, default=0, help="the seed evaluate.py --reference-floor uses")
    parser.add_argument("--out", required=True, help="ndjson to write")
    args = parser.parse_args()
    split = load_split(args.split)
    chosen = reference_floor_indices(split, len(split["test"]), args.seed)
    subsets = load_split_sketches(args.data, {"train": chosen, "test": split["test"]}, default_cache_dir() / "datasets")
    out = [round_trip(s, args.points_per_stroke, args.resampling, args.epsilon, args.max_stroke_length)
           for s in subsets["train"]]
    write_ndjson_atomic(args.out, (to_ndjson_record(s, word="roundtrip", key_id=str(i)) for i, s in zip(chosen, out)))
    points = np.mean([len(stroke) for sketch in out for stroke in sketch])
    cut = f", pieces <= {args.max_stroke_length:g} px" if args.max_stroke_length > 0 else ""
    print(f"{len(out)} train drawings, P = {args.points_per_stroke} ({args.resampling}{cut}), RDP {args.epsilon:g} px: "
          f"{points:.2f} points per stroke -> {args.out}\nmachine: {machine()}")


if __name__ == "__main__":
    main()
