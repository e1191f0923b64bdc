"""Training throughput of the default configuration (train.py's defaults): optimizer steps/s and sketches/s.

    python benchmarks/bench_training.py [--steps 30] [--batch-size 64]

Times the exact loss/backward/step of train.py on realistic random sketches (8 strokes each) after
a few warm-up steps; no data loading, which train.py does once up front.
"""

import argparse
import time

import torch
from common import machine, peak_rss_mb

from train import DiffusionObjective, build_model, build_schedulers, parse_args


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--strokes", type=int, default=8, help="strokes per random sketch")
    args = parser.parse_args()
    train_args = parse_args(["--category", "rabbit", "--output-dir", "unused", "--train-batch-size", str(args.batch_size)])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(train_args).to(device)
    noise_scheduler, _ = build_schedulers(train_args)
    objective = DiffusionObjective(model, noise_scheduler, train_args.noise_draws, train_args.stop_loss_weight,
                                   train_args.history_noise)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    strokes = (torch.rand(args.batch_size, train_args.max_strokes, train_args.points_per_stroke, 2, generator=generator)
               * 2 - 1).to(device)
    lengths = torch.full((args.batch_size,), args.strokes, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            loss = objective(strokes, lengths, generator)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"default model ({params:.1f}M parameters), batch {args.batch_size}, {args.strokes} strokes/sketch, "
          f"{train_args.noise_draws} noise draws/stroke, {device}")
    print(f"{args.steps / seconds:.2f} steps/s   {args.steps * args.batch_size / seconds:.0f} sketches/s   "
          f"peak memory {peak_rss_mb():.0f} MiB")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
