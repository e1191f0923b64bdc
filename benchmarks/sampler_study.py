"""FID/KID of one pipeline under several sampling settings against a reference set: the sampler study.

    python benchmarks/sampler_study.py --model outputs/e2 --data data/rabbit_sketchrnn_val.ndjson \\
        --split data/rabbit_sketchrnn_val.split.json --num-samples 500 \\
        --setting "" --setting guidance_scale=1.5 --setting scheduler=ddim,num_inference_steps=30 \\
        --setting first_timestep=990 --setting simplify_history=false

Each ``--setting`` is comma-separated ``key=value`` pairs: arguments of the pipeline call
(``num_inference_steps``, ``guidance_scale``, ``temperature``, ``simplify_history``, ...), ``scheduler=ddim|dpm|ddpm``
(swapped in with ``from_config``), ``scheduler.OPTION=VALUE`` (a scheduler config option, e.g.
``scheduler.algorithm_type=sde-dpmsolver++``), ``first_timestep=T`` (sampling steps at T, T - 1000 / steps, ...
instead of the scheduler's own spacing) and ``timestep_power=p`` (steps at 999 (1 - i / steps) ** p: p > 1 puts more
of them at low noise; one of the two per setting). An empty setting is the pipeline's defaults. Sketches are
generated (``--seed``, batches of 500; other seeds show how much a 500-sample FID moves by chance), rendered and
scored as ``evaluate.py`` does, against the split's test drawings; each line gives FID, KID, sampling seconds, and
mean strokes per sketch, stroke length (pixels) and points per stroke next to the reference's.
"""

import argparse
import time

from common import machine  # also puts the repository on sys.path

from evaluate import FeatureCache, render_all, sample_in_batches
from pipeline.data import load_split, load_split_sketches, stroke_statistics
from pipeline.metrics import default_cache_dir, fid_kid_from_features, inception_extractor, inception_weights


def parse_setting(text: str) -> dict:
    """``"a=1,b=true"`` -> ``{"a": 1, "b": True}`` (ints, floats, booleans, else strings)."""
    setting = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--setting {text!r}: {item!r} is not key=value")
        lowered = value.lower()
        if lowered in ("true", "false"):
            setting[key] = lowered == "true"
            continue
        for cast in (int, float, str):
            try:
                setting[key] = cast(value)
                break
            except ValueError:
                pass
    return setting


def configure(pipe, setting: dict) -> dict:
    """Apply the scheduler parts of ``setting`` to ``pipe``; return the remaining pipeline call arguments."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    setting = dict(setting)
    kind = setting.pop("scheduler", None)
    options = {key.split(".", 1)[1]: setting.pop(key) for key in list(setting) if key.startswith("scheduler.")}
    if kind or options:
        cls = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm": DPMSolverMultistepScheduler}[kind] if kind \
            else type(pipe.scheduler)
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **options)
    first, power = setting.pop("first_timestep", None), setting.pop("timestep_power", None)
    if first is not None and power is not None:
        raise ValueError(f"first_timestep={first} and timestep_power={power} both set the timesteps; give one of them")
    if first is not None or power is not None:
        steps = setting.get("num_inference_steps", 10)
        num_train_timesteps = pipe.scheduler.config.num_train_timesteps
        if power is not None:  # (T - 1) (1 - i / steps) ** power, repeats merged: power > 1 puts more at low noise
            last = num_train_timesteps - 1
            timesteps = sorted({round(last * (1 - i / steps) ** power) for i in range(steps)}, reverse=True)
        else:
            timesteps = [first - i * (num_train_timesteps // steps) for i in range(steps)]
        set_timesteps = pipe.scheduler.set_timesteps
        # the pipeline asks for num_inference_steps; this instance answers with the fixed list instead
        pipe.scheduler.set_timesteps = lambda num_inference_steps=None, device=None: set_timesteps(
            timesteps=timesteps, device=device)
    return setting


def main():
    import torch
    from diffusers import DiffusionPipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="pipeline folder")
    parser.add_argument("--data", required=True, help="ndjson of the reference drawings")
    parser.add_argument("--split", required=True, help="split JSON; its test part is the reference set")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sketches")
    parser.add_argument("--setting", action="append", default=None, help="key=value,... (repeatable)")
    args = parser.parse_args()
    cache = default_cache_dir()
    reference = load_split_sketches(args.data, load_split(args.split), cache / "datasets")["test"]
    weights = inception_weights(None, cache)
    features = FeatureCache(inception_extractor(weights), weights.sha256, cache / "features")
    real = features(render_all(reference, 299, 3.0))
    real_stats = stroke_statistics(reference)
    print(f"model {args.model}; {args.num_samples} generated (seed {args.seed}) vs {len(reference)} reference drawings "
          f"({args.data})")
    for text in args.setting or [""]:
        pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
        pipe.set_progress_bar_config(disable=True)
        call = configure(pipe, parse_setting(text))
        start = time.perf_counter()
        sketches = sample_in_batches(pipe, args.num_samples, 500, torch.Generator().manual_seed(args.seed), **call)
        seconds = time.perf_counter() - start
        scores = fid_kid_from_features(real, features(render_all(sketches, 299, 3.0)),
                                       kid_subset_size=min(1000, len(reference), len(sketches)))
        stats = stroke_statistics(sketches)
        print(f"{text or 'defaults':45s} FID {scores['fid']:6.2f}  KID {scores['kid_mean']:.4f}  {seconds:5.1f} s  "
              f"strokes {stats['strokes_per_sketch'].mean():.2f} (ref {real_stats['strokes_per_sketch'].mean():.2f})  "
              f"length {stats['stroke_length'].mean():.0f} px (ref {real_stats['stroke_length'].mean():.0f})  "
              f"points {stats['points_per_stroke'].mean():.2f} (ref {real_stats['points_per_stroke'].mean():.2f})",
              flush=True)
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
