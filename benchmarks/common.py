"""Helpers shared by the benchmark scripts: machine description and peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {device}, {time.strftime('%Y-%m-%d')}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training_steps_per_second(steps: int, batch: int, mixed_precision: str = "auto",
                              strokes_per_sketch: int = 9) -> float:
    """Optimizer steps/s of train.py's default recipe (its loss, backward and AdamW step, under the autocast that
    ``mixed_precision`` resolves to as in train.py; no data loading) on random sketches of ``strokes_per_sketch``
    strokes, after one warm-up step, on the CPU or the first GPU."""
    import torch

    from sketch_diffusion.train_options import parse_args
    from sketch_diffusion.training import (DiffusionObjective, build_model, build_schedulers, resolve_mixed_precision,
                                           sketch_generators)

    args = parse_args(["--category", "rabbit", "--output-dir", "unused", "--train-batch-size", str(batch)])
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_mixed_precision(mixed_precision)
    if precision == "fp16" and device == "cpu":
        raise ValueError("fp16 autocast needs a GPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model = build_model(args).train().to(device)
    objective = DiffusionObjective(model, build_schedulers(args)[0], args.noise_draws, args.stop_loss_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)  # as train.py
    strokes = torch.rand(batch, args.max_strokes, args.points_per_stroke, 2, generator=torch.Generator().manual_seed(0))
    strokes = (strokes * 2 - 1).to(device)
    lengths = torch.full((batch,), strokes_per_sketch, device=device)

    def step(i):
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = objective(strokes, lengths, sketch_generators([0, i], range(batch)))[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step(0)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)
