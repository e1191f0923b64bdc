"""The FID cost of the stroke representation alone: real drawings sent through it, with no model.

    python benchmarks/representation_floor.py --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json --points-per-stroke 32 --out outputs/roundtrip_p32.ndjson
    python evaluate.py --generated outputs/roundtrip_p32.ndjson --category rabbit \\
        --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --out outputs/roundtrip_p32.json

Takes the real train drawings that ``evaluate.py --reference-floor`` scores (seed 0) and sends each through
what a perfect model's strokes go through in the pipeline: cut into pieces if longer than ``--max-stroke-length``
pixels and resampled to P points in [-1, 1] (``--resampling``, as in ``train.py``), smoothed if asked
(``--smoothing-passes``, the pipeline's ``smoothing_passes``), then the history step (RDP with
``--epsilon`` pixels, resampled back to P points) and the output step (fit to the canvas, RDP with ``--epsilon``,
integer pixels, pieces joined again). Scored against the test split, this is
the best FID that a model with this representation can reach; its distance to the reference floor is what the
representation costs.

Two options take that cost apart: ``--only-longer-than L`` sends only strokes longer than L pixels through the
representation and keeps the others as drawn (where is the cost?), and ``--restore-corners`` puts back the corners
that equal spacing cuts (``restore_corners``; is the cost the cut corners?).
"""

import argparse

import numpy as np

from common import machine  # also puts the repository on sys.path

from evaluate import reference_floor_indices
from pipeline.data import load_split, load_split_sketches, stroke_length
from pipeline.fileio import write_ndjson_atomic
from pipeline.metrics import default_cache_dir
from pipeline.rendering import to_ndjson_record
from pipeline.representation import (RESAMPLING_MODES, clean_denoised_strokes, fit_to_canvas, join_pieces,
                                     raw_to_simplified, rdp_keep, resample_stroke, split_long_strokes,
                                     strokes_to_normalized, unit_to_pixels)

MIN_CORNER_SINE = 0.2  # restore_corners leaves a vertex alone where its two sides meet at less than ~12 degrees


def restore_corners(points: np.ndarray, epsilon: float) -> np.ndarray:
    """RDP-simplify an ``(n, 2)`` polyline of equally spaced points (pixels, ``epsilon`` in pixels), then put back the
    corners that equal spacing cuts. A side of the simplified polyline with at least two points strictly inside it
    gets a line fitted to those points (total least squares); the vertices between two such sides (one vertex, or a
    chamfer of several joined by shorter sides) become the one point where the two lines cross, unless the lines meet
    at a shallow angle (``MIN_CORNER_SINE``) or cross more than one spacing from any of those vertices.
    Returns the ``(m, 2)`` float32 vertices."""
    points = np.asarray(points, dtype=np.float64)
    kept = np.flatnonzero(rdp_keep(points, epsilon))
    spacing = stroke_length(points) / (len(points) - 1) if len(points) > 1 else 0.0  # mean distance between points
    lines = []  # per side: (a point on the fitted line, unit direction), or None for a side too short to fit
    for a, b in zip(kept[:-1], kept[1:]):
        between = points[a + 1 : b]
        centre = between.mean(axis=0) if len(between) >= 2 else None
        lines.append(None if centre is None else (centre, np.linalg.svd(between - centre)[2][0]))
    vertices, j = [points[kept[0]]], 1
    while j < len(kept) - 1:
        k = j  # the group: vertices j..k, joined by sides too short to fit
        while k < len(kept) - 2 and lines[k] is None:
            k += 1
        group = points[kept[j : k + 1]]
        before, after = lines[j - 1], lines[k]
        if before is not None and after is not None:
            (p, u), (q, v) = before, after
            sine = u[0] * v[1] - u[1] * v[0]
            if abs(sine) >= MIN_CORNER_SINE:
                crossing = p + u * ((q - p)[0] * v[1] - (q - p)[1] * v[0]) / sine
                if np.linalg.norm(group - crossing, axis=1).max() <= spacing:
                    group = crossing[None]
        vertices.extend(group)
        j = k + 1
    if len(kept) > 1:
        vertices.append(points[kept[-1]])
    return np.array(vertices, dtype=np.float32)


def round_trip(sketch, points_per_stroke: int, resampling: str, epsilon: float, max_stroke_length: float = 0.0,
               corners: bool = False, fit: bool = True, smoothing_passes: int = 0) -> list[np.ndarray]:
    """Absolute strokes (pixels) -> the pipeline's representation and output form -> absolute strokes (pixels).
    ``corners``: both simplification steps restore the corners (``restore_corners``) instead of plain RDP.
    ``fit=False`` skips the output's canvas re-fit. ``smoothing_passes``: as the pipeline's, on the P points."""
    normalized = strokes_to_normalized(split_long_strokes(sketch, max_stroke_length), points_per_stroke, resampling)
    normalized = clean_denoised_strokes(normalized, smoothing_passes, epsilon, resampling, simplify=not corners)
    if corners:
        history = [resample_stroke(restore_corners(unit_to_pixels(s), epsilon), points_per_stroke, resampling)
                   for s in normalized]
        fitted = fit_to_canvas(history) if fit else history
        simplified = [np.round(restore_corners(s, epsilon)).astype(np.float32) for s in fitted]
    else:
        simplified = raw_to_simplified([unit_to_pixels(s) for s in normalized], fit=fit, epsilon=epsilon)
    return join_pieces(simplified) if max_stroke_length > 0 else simplified


def round_trip_long_strokes(sketch, min_length: float, **options) -> list[np.ndarray]:
    """``round_trip`` of each stroke longer than ``min_length`` pixels on its own, without the canvas re-fit; the
    others are kept as drawn."""
    return [round_trip([s], fit=False, **options)[0] if stroke_length(s) > min_length else s for s in sketch]


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
    parser.add_argument("--smoothing-passes", type=int, default=0,
                        help="smooth the P points as the pipeline's smoothing_passes does (0: none)")
    parser.add_argument("--only-longer-than", type=float, default=0.0, metavar="PIXELS",
                        help="send only strokes longer than this through the representation, without the canvas "
                             "re-fit, and keep the others as drawn (0: all strokes, re-fitted)")
    parser.add_argument("--restore-corners", action="store_true",
                        help="simplify by RDP and then put back the corners that equal spacing cuts (restore_corners)")
    parser.add_argument("--seed", type=int, default=0, help="the seed evaluate.py --reference-floor uses")
    parser.add_argument("--out", required=True, help="ndjson to write")
    args = parser.parse_args()
    if args.only_longer_than > 0 and args.max_stroke_length > 0:
        parser.error("--only-longer-than and --max-stroke-length cannot be combined")
    if args.smoothing_passes < 0:
        parser.error(f"--smoothing-passes must be >= 0, got {args.smoothing_passes}")
    split = load_split(args.split)
    chosen = reference_floor_indices(split, len(split["test"]), args.seed)
    subsets = load_split_sketches(args.data, {"train": chosen, "test": split["test"]}, default_cache_dir() / "datasets")
    options = dict(points_per_stroke=args.points_per_stroke, resampling=args.resampling, epsilon=args.epsilon,
                   max_stroke_length=args.max_stroke_length, corners=args.restore_corners,
                   smoothing_passes=args.smoothing_passes)
    if args.only_longer_than > 0:
        out = [round_trip_long_strokes(s, args.only_longer_than, **options) for s in subsets["train"]]
    else:
        out = [round_trip(s, **options) for s in subsets["train"]]
    write_ndjson_atomic(args.out, (to_ndjson_record(s, word="roundtrip", key_id=str(i)) for i, s in zip(chosen, out)))
    points = np.mean([len(stroke) for sketch in out for stroke in sketch])
    cut = f", pieces <= {args.max_stroke_length:g} px" if args.max_stroke_length > 0 else ""
    cut += ", corners restored" if args.restore_corners else ""
    if args.smoothing_passes:
        cut += f", smoothed ({args.smoothing_passes} pass{'es' * (args.smoothing_passes > 1)})"
    if args.only_longer_than > 0:
        lengths = np.array([stroke_length(stroke) for sketch in subsets["train"] for stroke in sketch])
        cut += (f", only the {(lengths > args.only_longer_than).sum()} of {len(lengths)} strokes longer than "
                f"{args.only_longer_than:g} px")
    print(f"{len(out)} train drawings, P = {args.points_per_stroke} ({args.resampling}{cut}), RDP {args.epsilon:g} px: "
          f"{points:.2f} points per stroke -> {args.out}\nmachine: {machine()}")


if __name__ == "__main__":
    main()
