"""Sampling speed of the diffusion pipeline: sketches/s at batch 1 and 64, 20 and 50 steps; 2,000 sketches
with the pipeline's defaults (and without guidance, for a guided model).

    python benchmarks/bench_sampling.py --model models/rabbit

Without --model a randomly initialised default-size model is timed with a fixed number of strokes
(its stop head is untrained); with a trained model the sketches stop where the model says.
"""

import argparse
import time

import torch
from common import machine, peak_rss_mb

from sketch_diffusion.evaluation import default_inference_steps, sample_in_batches
from sketch_diffusion.settings import pipeline_folder, positive_int


def load(model: str | None, fixed_strokes: int):
    from diffusers import DDIMScheduler, DiffusionPipeline

    from pipeline import StrokeDiffusionModel, StrokeDiffusionPipeline

    if model:
        pipe = DiffusionPipeline.from_pretrained(model, trust_remote_code=True)
        kwargs = {}
    else:
        torch.manual_seed(0)
        model = StrokeDiffusionModel().eval()
        torch.nn.init.zeros_(model.stop_head.weight)
        torch.nn.init.constant_(model.stop_head.bias, -30.0)  # never stop: every sketch draws exactly max_strokes
        pipe = StrokeDiffusionPipeline(model, DDIMScheduler(beta_schedule="squaredcos_cap_v2"))
        kwargs = {"max_strokes": fixed_strokes}
    pipe.set_progress_bar_config(disable=True)
    return pipe, kwargs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=pipeline_folder, help="pipeline folder (default: random default-size model)")
    parser.add_argument("--fixed-strokes", type=positive_int, default=8, help="strokes per sketch for the random model")
    parser.add_argument("--total", type=positive_int, default=2000, help="sketches for the test-split-size run")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="inference steps of the test-split-size run (default: the pipeline's default)")
    args = parser.parse_args()
    pipe, kwargs = load(args.model, args.fixed_strokes)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    print(f"model: {args.model or 'random init'} ({params / 1e6:.1f}M parameters), scheduler {type(pipe.scheduler).__name__}")
    pipe(num_sketches=2, num_inference_steps=2, **kwargs)  # warm-up
    for steps in (20, 50):
        for batch in (1, 64):
            repeats = 8 if batch == 1 else 1
            strokes, start = 0, time.perf_counter()
            for r in range(repeats):
                out = pipe(num_sketches=batch, num_inference_steps=steps, generator=torch.Generator().manual_seed(r), **kwargs)
                strokes += sum(len(s) for s in out.strokes)
            seconds = time.perf_counter() - start
            n = batch * repeats
            print(f"steps {steps:2d} batch {batch:2d}: {n / seconds:7.2f} sketches/s  ({strokes / n:.1f} strokes/sketch, "
                  f"{seconds / n * 1000:7.1f} ms/sketch)")
    steps = args.total_steps or default_inference_steps(pipe)
    guidance = pipe.config.default_guidance_scale
    settings = [(f"defaults (guidance_scale={guidance})", {})]
    if guidance != 1.0:
        settings.append(("no guidance (guidance_scale=1.0)", {"guidance_scale": 1.0}))
    for name, extra in settings:
        start = time.perf_counter()
        sample_in_batches(pipe, args.total, 500, torch.Generator().manual_seed(0), num_inference_steps=steps,
                          **kwargs, **extra)
        print(f"{args.total} sketches at {steps} steps of {type(pipe.scheduler).__name__}, {name}, batches of 500: "
              f"{time.perf_counter() - start:.1f} s")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
