"""The model's stroke detail on real drawings: each stroke noised partway, then denoised given the real ones before it.

    python benchmarks/teacher_forced.py --model models/rabbit --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json --start-timestep 199 --out outputs/teacher_forced_rabbit.ndjson
    python evaluate.py --generated outputs/teacher_forced_rabbit.ndjson --category rabbit \\
        --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json \\
        --out outputs/teacher_forced_rabbit.json

Takes the real train drawings that ``evaluate.py --reference-floor`` scores (seed 0), the ones
``representation_floor.py`` sends through the representation, and redraws each of their strokes with the model, given
the drawing's real strokes before it (resampled as in training): the stroke, resampled to P points, is noised to the
first sampler step at or below ``--start-timestep`` and the model's denoiser runs the remaining steps, as in SDEdit.
The coarse shape and place of every stroke, and the number of strokes, stay the drawing's; what the noise below that
timestep hides (at t = 99 of the cosine schedule, about 20 pixels) is the model's. Each redrawn stroke then takes the
pipeline's path (smoothing, the history simplification, fit to the canvas and RDP for the output).

Scored against the test split, it reads beside the representation floor (no model) and the model's own samples
(its strokes and its composition): near the floor, the model draws detail as well as its representation allows and
its cost is in composing strokes; near its own samples' score, the detail costs as much as everything. Started
from pure noise (``--start-timestep 999``) every stroke is a fresh sample given a history it did not draw, so the
drawings lose their coherence (parts drawn twice or not at all) and the score says little about either.
"""

import argparse
import time

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from common import machine  # also puts the repository on sys.path

from evaluate import default_inference_steps, reference_floor_indices
from pipeline.data import load_split, load_split_sketches
from pipeline.fileio import write_ndjson_atomic
from pipeline.metrics import default_cache_dir
from pipeline.rendering import to_ndjson_record
from pipeline.representation import (clean_denoised_strokes, join_pieces, pack_sketches, raw_to_simplified,
                                     unit_to_pixels)


@torch.no_grad()
def redraw_from(pipe, real: torch.Tensor, context: torch.Tensor, start_timestep: int, num_inference_steps: int,
                generator: torch.Generator) -> torch.Tensor:
    """Noise ``real (N, P, 2)`` strokes in [-1, 1] to the first of the scheduler's ``num_inference_steps`` timesteps
    at or below ``start_timestep``, then denoise them from there given ``context (N, D)`` (no guidance).
    Returns ``(N, P, 2)`` in [-1, 1]; ``real`` itself when no step is at or below ``start_timestep``."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(num_inference_steps, device=real.device)
    begin = int((scheduler.timesteps > start_timestep).sum())
    if begin == len(scheduler.timesteps):
        return real
    if hasattr(scheduler, "set_begin_index"):  # multistep solvers count their steps from here
        scheduler.set_begin_index(begin)
    noise = randn_tensor(real.shape, generator=generator, device=real.device, dtype=real.dtype)
    sample = scheduler.add_noise(real, noise, scheduler.timesteps[begin : begin + 1])
    for t in scheduler.timesteps[begin:]:
        model_output = pipe.transformer(scheduler.scale_model_input(sample, t), t, context)
        sample = scheduler.step(model_output, t, sample).prev_sample
    return sample.clamp(-1.0, 1.0)


@torch.no_grad()
def teacher_forced_strokes(pipe, sketches, generator: torch.Generator, start_timestep: int, num_inference_steps: int,
                           smoothing_passes: int | None = None, batch_size: int = 100,
                           progress: bool = False) -> tuple[list, np.ndarray]:
    """Redraw every stroke of ``sketches`` (lists of ``(n, 2)`` pixel arrays) with ``redraw_from``, given the real
    strokes before it, then smooth (the pipeline's default unless ``smoothing_passes`` is given) and simplify it as
    the pipeline does.

    Returns the redrawn sketches as lists of ``(n, 2)`` float32 arrays in canvas pixels (the history form, not yet
    fitted or simplified for output) and the indices of the sketches used: like training, sketches with more model
    strokes than the model's ``max_strokes`` are left out.
    """
    config, defaults = pipe.transformer.config, pipe.config
    smoothing_passes = defaults.default_smoothing_passes if smoothing_passes is None else smoothing_passes
    if config.link_pieces:
        raise ValueError("teacher forcing does not support link_pieces models (their strokes also need the real links)")
    if defaults.default_guidance_scale != 1.0:
        raise ValueError(f"teacher forcing runs without guidance; this model's default_guidance_scale is "
                         f"{defaults.default_guidance_scale}")
    strokes, lengths, kept = pack_sketches(sketches, config.points_per_stroke, config.max_strokes, config.resampling,
                                           config.max_stroke_length)
    redrawn = []
    for start in tqdm(range(0, len(kept), batch_size), desc="teacher-forced batches", disable=not progress):
        counts = torch.from_numpy(lengths[start : start + batch_size])
        longest = int(counts.max())
        history = torch.from_numpy(strokes[start : start + batch_size, :longest]).to(pipe.transformer.dtype)
        context = pipe.transformer.encode_history(history)[:, :longest]  # [:, k] has seen strokes 0..k-1
        drawn = torch.arange(longest)[None] < counts[:, None]  # (B, longest): the strokes each sketch has
        new = redraw_from(pipe, history[drawn], context[drawn], start_timestep, num_inference_steps, generator)
        points = clean_denoised_strokes(new.float().numpy(), smoothing_passes, defaults.default_simplify_epsilon,
                                        config.resampling)
        rows = np.split(unit_to_pixels(points), np.cumsum(counts.numpy())[:-1])
        redrawn += [list(row) for row in rows]
    return redrawn, kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="pipeline folder")
    parser.add_argument("--data", required=True, help="ndjson[.gz] with the drawings")
    parser.add_argument("--split", required=True, help="split JSON (train/test line indices)")
    parser.add_argument("--floor-seed", type=int, default=0, help="the seed evaluate.py --reference-floor uses to "
                                                                  "choose the train drawings")
    parser.add_argument("--start-timestep", type=int, required=True,
                        help="noise each real stroke to the first sampler step at or below this timestep (0..999) and "
                             "denoise from there")
    parser.add_argument("--num-inference-steps", type=int, default=None,
                        help="the sampler's steps over the whole schedule, of which those at or below --start-timestep "
                             "run (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--smoothing-passes", type=int, default=None,
                        help="the pipeline's smoothing_passes (default: the model's saved default)")
    parser.add_argument("--batch-size", type=int, default=100, help="drawings per batch")
    parser.add_argument("--out", required=True, help="ndjson to write")
    args = parser.parse_args()
    from diffusers import DiffusionPipeline

    split = load_split(args.split)
    chosen = reference_floor_indices(split, len(split["test"]), args.floor_seed)
    drawings = load_split_sketches(args.data, {"train": chosen, "test": split["test"]},
                                   default_cache_dir() / "datasets")["train"]
    pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
    steps = args.num_inference_steps or default_inference_steps(pipe)
    start = time.perf_counter()
    redrawn, kept = teacher_forced_strokes(pipe, drawings, torch.Generator().manual_seed(args.seed),
                                           args.start_timestep, steps, args.smoothing_passes, args.batch_size,
                                           progress=True)
    seconds = time.perf_counter() - start
    epsilon = pipe.config.default_simplify_epsilon
    out = [raw_to_simplified(sketch, fit=True, epsilon=epsilon) for sketch in redrawn]
    if pipe.transformer.config.max_stroke_length > 0:
        out = [join_pieces(sketch) for sketch in out]
    write_ndjson_atomic(args.out, (to_ndjson_record(s, word="teacher_forced", key_id=str(chosen[i]))
                                   for i, s in zip(kept, out)))
    points = np.mean([len(stroke) for sketch in out for stroke in sketch])
    smoothing = f", smoothing {args.smoothing_passes}" if args.smoothing_passes is not None else ""
    print(f"{len(out)} of {len(drawings)} train drawings redrawn by {args.model} (from t <= {args.start_timestep} of "
          f"{steps} steps, noise seed {args.seed}{smoothing}) in {seconds:.1f} s: {points:.2f} points per stroke -> "
          f"{args.out}\nmachine: {machine()}")


if __name__ == "__main__":
    main()
