"""The speed figures side by side, in one run: 2,000 rabbits from Google's pretrained Sketch-RNN, from our own
Sketch-RNN baseline (if given) and from our diffusion pipeline (strokes, as the Sketch-RNN samplers give; then with
the pipeline's default images too; and, for a distilled pipeline, its full sampler); a 4-sketch request of the Space;
training steps/s.

    python benchmarks/bench_side_by_side.py --diffusion models/rabbit \\
        --baseline benchmarks/baselines/rabbit_sketchrnn_40min

Without ``--baseline`` (a ``train_sketch_rnn.py`` output folder) that row is left out. The three 2,000-sketch rows
(a) to (c) report the median of ``--repeats`` draws, timed in rounds, and their range. Run it on an otherwise idle machine.
"""

import argparse
import statistics
import time

import torch
from common import SHARED, machine, training_steps_per_second

from pipeline.rendering import image_grid, render_svg, sketches_gif
from sketch_diffusion.data import to_ndjson_record
from sketch_diffusion.evaluation import default_inference_steps, sample_in_batches
from sketch_diffusion.sketch_rnn import PretrainedSketchRNN, sample_sketches
from sketch_diffusion.training import resolve_mixed_precision
from sketch_diffusion.settings import pipeline_folder, positive_int


def timed_rounds(rows: dict, num: int, repeats: int = 1) -> dict:
    """Time each of ``rows`` (label -> a function drawing ``num`` sketches) ``repeats`` times, in rounds (every row
    once per round, so that a machine that slows down or speeds up during the run weighs on all rows alike); print
    each row's median and range; return sketches/s at the median, by label."""
    seconds, strokes = {label: [] for label in rows}, {}
    for _ in range(repeats):
        for label, fn in rows.items():
            start = time.perf_counter()
            sketches = fn()
            seconds[label].append(time.perf_counter() - start)
            strokes[label] = sum(len(s) for s in sketches) / len(sketches)
    rates = {}
    for label, times in seconds.items():
        median = statistics.median(times)
        spread = f", {min(times):.2f}-{max(times):.2f} over {repeats}" if repeats > 1 else ""
        print(f"{label:52s} {median:7.2f} s  {num / median:8.1f} sketches/s  "
              f"({strokes[label]:.1f} strokes/sketch{spread})")
        rates[label] = num / median
    return rates


def timed(label, fn, num):
    return timed_rounds({label: fn}, num)[label]


def space_request(pipe, seed: int) -> list:
    """What the Space's "Draw" does for 4 sketches: the pipeline, the stroke-by-stroke GIF, the grid, downloads."""
    out = pipe(num_sketches=4, generator=torch.Generator().manual_seed(seed), image_size=192)
    sketches_gif(out.strokes, columns=4, size=192)
    image_grid(out.images, columns=4)
    for i, strokes in enumerate(out.strokes):
        render_svg(strokes)
        to_ndjson_record(strokes, word="rabbit", key_id=f"space-{i}")
    return out.strokes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", default=str(SHARED / "data" / "sketchrnn_models" / "rabbit.gen.json"))
    parser.add_argument("--baseline", default=None, help="train_sketch_rnn.py output folder (optional)")
    parser.add_argument("--diffusion", required=True, type=pipeline_folder, help="pipeline folder")
    parser.add_argument("--num", type=positive_int, default=2000)
    parser.add_argument("--batch-size", type=positive_int, default=2000, help="diffusion sketches per pipeline call")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps per stroke (default: the pipeline's)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="times each 2,000-sketch row is drawn; the median is reported (default: %(default)s)")
    parser.add_argument("--training-steps", type=int, default=10, help="training steps to time (0: skip)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

    from sketch_diffusion.modeling_sketch_rnn import SketchRNNDecoder

    google = PretrainedSketchRNN(args.pretrained)
    baseline = SketchRNNDecoder.from_pretrained(args.baseline).eval() if args.baseline else None
    pipe = DiffusionPipeline.from_pretrained(args.diffusion, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    steps = args.steps or default_inference_steps(pipe)
    full = None  # a distilled pipeline's full sampler: its transformer under DPM-Solver++, timed beside it
    if getattr(pipe, "uses_distilled", False):
        full = pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
        full.set_progress_bar_config(disable=True)
    for warm in filter(None, (pipe, full)):
        warm(num_sketches=2, num_inference_steps=2)

    def diffusion(p, num_steps):
        return lambda: sample_in_batches(p, args.num, args.batch_size, torch.Generator().manual_seed(0),
                                         num_inference_steps=num_steps)

    print(f"machine: {machine()}")
    with torch.no_grad():
        precision = "bf16" if getattr(pipe, "autocast_dtype", None) else "float32"  # older pipelines: float32
        sampler = f"{steps} {type(pipe.scheduler).__name__} steps, {precision}"
        rows = {f"(a) Google's pretrained Sketch-RNN ({google.hidden_size} LSTM)":
                lambda: google.sample(args.num, progress=False)}
        if baseline is not None:
            rows[f"(b) our Sketch-RNN baseline ({baseline.config.hidden_size} LSTM)"] = lambda: sample_sketches(
                baseline.step, args.num, baseline.config.max_seq_len, baseline.config.scale_factor, progress=False)
        rows[f"(c) our diffusion pipeline ({sampler})"] = diffusion(pipe, steps)
        rates = timed_rounds(rows, args.num, args.repeats)
        ours = rates.pop(f"(c) our diffusion pipeline ({sampler})")
        print("   ".join(f"diffusion / {label[4:label.index(' (')]}: {ours / rate:.2f}x" for label, rate in rates.items()))
        timed("(c) with 32 px PIL images too (output_type='pil')", lambda: sample_in_batches(
            pipe, args.num, args.batch_size, torch.Generator().manual_seed(0), num_inference_steps=steps,
            output_type="pil", image_size=32), args.num)
        if full is not None:
            full_steps = full.default_num_inference_steps
            timed(f"(c') its full sampler ({full_steps} {type(full.scheduler).__name__} steps)",
                  diffusion(full, full_steps), args.num)
        seconds = []
        for seed in range(5):
            start = time.perf_counter()
            space_request(pipe, seed)
            seconds.append(time.perf_counter() - start)
        print(f"{'(d) a 4-sketch Space request (pipeline, GIF, grid, downloads)':52s} "
              f"{sorted(seconds)[2]:7.2f} s median of 5 (min {min(seconds):.2f}, max {max(seconds):.2f})")
    if args.training_steps:
        for precision in dict.fromkeys(["no", resolve_mixed_precision("auto")]):
            rate = training_steps_per_second(args.training_steps, 64, precision)
            print(f"{f'(e) training, default recipe, batch 64, autocast {precision}':52s} {rate:7.2f} steps/s  "
                  f"({64 * rate:.0f} sketches/s)")


if __name__ == "__main__":
    main()
