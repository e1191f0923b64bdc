"""Which diffusers schedulers draw sketches like the saved one: strokes per sketch, stroke length (canvas pixels)
and the mean pixel difference of the rendered sketches against the saved scheduler's, same seed and steps.

    python benchmarks/check_schedulers.py --model models/rabbit --num 64 --steps 20

Every scheduler class of diffusers is tried, the refused ones too (the pipeline's allow-list is lifted here), so
that ``SUPPORTED_SCHEDULERS`` can be checked against what each one draws.
"""

import argparse
import sys
import time

import numpy as np
import torch
from common import machine  # also puts the repository on sys.path
from sketch_diffusion.settings import pipeline_folder, positive_int


def stroke_figures(sketches) -> tuple[float, float]:
    lengths = [np.linalg.norm(np.diff(stroke, axis=0), axis=1).sum() for sketch in sketches for stroke in sketch]
    return float(np.mean([len(s) for s in sketches])), float(np.mean(lengths))


def main():
    import diffusers
    from diffusers import DiffusionPipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/rabbit", type=pipeline_folder)
    parser.add_argument("--num", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=20)
    args = parser.parse_args()
    pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    module = sys.modules[type(pipe).__module__]
    supported = module.SUPPORTED_SCHEDULERS
    module.SUPPORTED_SCHEDULERS = frozenset(n for n in dir(diffusers) if n.endswith("Scheduler"))
    saved = pipe.scheduler

    def draw():
        return pipe(num_sketches=args.num, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0))

    reference = draw()
    print(f"{machine()}; {args.model}, {args.num} sketches, {args.steps} steps, seed 0")
    print(f"saved {type(saved).__name__}: strokes/sketch %.2f, stroke length %.1f px" % stroke_figures(reference.strokes))
    for name in sorted(n for n in dir(diffusers) if n.endswith("Scheduler") and n != "SchedulerMixin"):
        try:
            pipe.scheduler = getattr(diffusers, name).from_config(saved.config)
            start = time.perf_counter()
            out = draw()
        except Exception as exc:  # noqa: BLE001 (a scheduler that cannot run here is reported, not fatal)
            print(f"{name:36s} cannot run: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            continue
        diff = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()
                        for a, b in zip(out.images, reference.images)])
        strokes, length = stroke_figures(out.strokes)
        print(f"{name:36s} {'supported' if name in supported else 'refused  '}  strokes/sketch {strokes:5.2f}  "
              f"length {length:6.1f} px  pixel difference {diff:5.1f}  {time.perf_counter() - start:5.1f} s")


if __name__ == "__main__":
    main()
