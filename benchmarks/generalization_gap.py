"""Training vs held-out loss of a trained pipeline: how much of what it learned is memorised.

    python benchmarks/generalization_gap.py --model models/rabbit --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json

Scores up to --num drawings of the split's train part and of its test part with the training objective
(``train.validation_loss``: the same noise for both, no context dropout) and prints the denoising and
stop losses of each. A model that generalises scores both alike; a large gap, above all in the stop
loss, means it recognises its training sketches rather than modelling rabbits.
"""

import argparse
import json
from pathlib import Path

from common import machine  # also puts the repository on sys.path

from pipeline.data import load_split, load_split_sketches
from pipeline.metrics import default_cache_dir
from pipeline.representation import pack_sketches


def main():
    import torch
    from diffusers import DDPMScheduler, DiffusionPipeline

    import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="pipeline folder (with training_config.json)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--num", type=int, default=2000, help="drawings scored from each part")
    args = parser.parse_args()
    pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
    config = json.loads((Path(args.model) / "training_config.json").read_text())
    options = argparse.Namespace(noise_draws=config["noise_draws"], stop_loss_weight=config["stop_loss_weight"],
                                 train_batch_size=250, seed=0)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # same betas and prediction type as in training
    model = pipe.transformer.float().eval()
    parts = load_split_sketches(args.data, load_split(args.split), default_cache_dir() / "datasets")
    print(f"model: {args.model} ({config.get('max_steps')} scheduled steps), {args.num} drawings per part")
    for part in ("train", "test"):
        strokes, lengths, _ = pack_sketches(parts[part][: args.num], model.config.points_per_stroke,
                                            model.config.max_strokes, model.config.resampling,
                                            model.config.max_stroke_length)
        loss = train.validation_loss(model, scheduler, torch.from_numpy(strokes), torch.from_numpy(lengths), options)
        print(f"{part:5s}: denoise loss {loss['val_denoise_loss']:.4f}   stop loss {loss['val_stop_loss']:.4f}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
