"""Stroke lengths given a real history: does the denoiser draw strokes as long as the drawings' own?

    python benchmarks/stroke_length_given_history.py --model models/rabbit --category rabbit \\
        --data data/rabbit_sketchrnn_val.ndjson --split data/rabbit_sketchrnn_val.split.json [--steps 10 50]

For ``--drawings`` test drawings of ``--data``, every stroke is drawn from noise by the model's full sampler
(``transformer`` under DPM-Solver++ with ``--steps`` steps) given the drawing's real strokes before it, then
simplified as the pipeline simplifies what it draws. Prints the mean and median arc length (canvas pixels, 0..255
units) of those strokes against the real strokes they stand in for, overall and at the first stroke positions.
Free-running sketches mix two causes of wrong stroke lengths, the denoiser and the model's own histories; here the
history is real, so what remains is the denoiser's (and the solver's).
"""

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from common import machine

from pipeline.representation import pack_sketches, simplify_normalized, unit_to_pixels
from sketch_diffusion.data import load_split_sketches, resolve_split, stroke_length
from sketch_diffusion.download import resolve_data_file
from sketch_diffusion.settings import pipeline_folder, positive_int
from sketch_diffusion.training import add_data_arguments


def arc_lengths(strokes: np.ndarray) -> np.ndarray:
    """``(N, P, 2)`` strokes in [-1, 1] -> ``(N,)`` polyline lengths in canvas pixels, as evaluate.py's stroke
    statistics measure them (``stroke_length``)."""
    return np.array([stroke_length(stroke) for stroke in unit_to_pixels(strokes)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=pipeline_folder, help="pipeline folder whose transformer draws")
    add_data_arguments(parser)
    parser.add_argument("--drawings", type=positive_int, default=300, help="test drawings to use (the first ones)")
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[10], help="DPM-Solver++ steps per stroke")
    parser.add_argument("--positions", type=positive_int, default=6, help="stroke positions to report one by one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

    data_file = resolve_data_file(args.category, args.data, args.data_dir, allow_download=not args.no_download)
    split, _ = resolve_split(data_file, args.category, args.split)
    sketches = load_split_sketches(data_file, split, Path(args.cache_dir) / "datasets", word=args.category)["test"]
    pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
    pipe = pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    model = pipe.transformer.eval()
    strokes, lengths, _ = pack_sketches(sketches[: args.drawings], model.config.points_per_stroke,
                                        model.config.max_strokes)
    if len(lengths) == 0:
        sys.exit(f"no test drawing of {data_file} has 1 to {model.config.max_strokes} strokes")
    strokes, lengths = torch.from_numpy(strokes), torch.from_numpy(lengths)
    exists = torch.arange(strokes.shape[1])[None] < lengths[:, None]  # (B, S)
    with torch.no_grad():
        contexts = model.encode_history(strokes)[:, :-1][exists]  # the context each real stroke was drawn in
    real = arc_lengths(strokes[exists].numpy())
    position = torch.nonzero(exists)[:, 1].numpy()
    print(f"{args.model}: {len(lengths)} test drawings, {len(real)} strokes; {machine()}")
    print(f"real strokes: mean {real.mean():.1f} px, median {np.median(real):.1f} px")
    for steps in args.steps:
        drawn = torch.zeros(len(real), model.config.points_per_stroke, 2)
        generator = torch.Generator().manual_seed(args.seed)
        for k in range(strokes.shape[1]):  # strokes at position k, each given its own real strokes before it
            at = torch.from_numpy(position == k)
            rows = exists[:, k]
            if not rows.any():
                continue
            with torch.no_grad():
                drawn[at], _ = pipe.denoise_stroke(copy.deepcopy(pipe.scheduler), contexts[at], steps, 1.0,
                                                   generator, 1.0, memory=model.row_memory(strokes[rows, :k]))
        drawn = arc_lengths(simplify_normalized(drawn.float().numpy(), pipe.config.simplify_epsilon))
        print(f"drawn with {steps} steps: mean {drawn.mean():.1f} px, median {np.median(drawn):.1f} px, "
              f"{drawn.mean() / real.mean():.3f} of the real mean")
        for k in range(args.positions):
            at = position == k
            if at.any():
                print(f"  stroke {k + 1}: real {real[at].mean():6.1f} px, drawn {drawn[at].mean():6.1f} px "
                      f"({at.sum()} strokes)")


if __name__ == "__main__":
    main()
