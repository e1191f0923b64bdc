"""Train the Sketch-RNN baseline on the same drawings, split and time budget as train.py.

    python train_sketch_rnn.py --category rabbit --data data/rabbit_sketchrnn.ndjson \\
        --split data/rabbit_sketchrnn.split.json --output-dir outputs/sketchrnn_rabbit --max-train-minutes 40
    python -m sketch_diffusion.sketch_rnn sample --model outputs/sketchrnn_rabbit --num 2000 --word rabbit \\
        --out baseline.ndjson

Writes the decoder (safetensors + config.json), ``training_config.json``, ``provenance.json`` and
``logs/train_log.jsonl`` to --output-dir, and checkpoints under ``checkpoints/``: an interrupted run continues with
``--resume-from-checkpoint latest``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sketch_diffusion.fileio import append_jsonl, trim_jsonl, write_json_atomic
from sketch_diffusion.modeling_sketch_rnn import SketchRNNDecoder
from pipeline.representation import stroke3_to_stroke5, strokes_to_stroke3
from sketch_diffusion.provenance import library_versions
from sketch_diffusion.release import save_pretrained_atomic
from sketch_diffusion.settings import DefaultsHelpFormatter
from sketch_diffusion.training import (add_data_arguments, load_training_sketches, resume_point, run_record,
                                       save_checkpoint, stop_if_not_finite)

logger = logging.getLogger("train_sketch_rnn")
CHECKPOINT_WEIGHTS = "decoder"  # a checkpoint's subfolder of weights
# options a resumed run may change: where things go, how long it runs (the learning rate decays per step), how often
# it saves, and the data's location (its content is checked: the run records its sha1 and the split's)
RESUMABLE_OPTIONS = {"output_dir", "resume_from_checkpoint", "max_steps", "max_train_minutes", "checkpointing_steps",
                     "checkpoints_total_limit", "data", "data_dir", "no_download", "cache_dir", "split"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--output-dir", required=True, help="folder for the model, its samples, logs and checkpoints")
    p.add_argument("--hidden-size", type=int, default=256, help="LSTM width")
    p.add_argument("--num-mixtures", type=int, default=20, help="Gaussian mixture components of each pen offset")
    p.add_argument("--max-seq-len", type=int, default=200, help="longest sketch in points; longer ones are filtered out")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on the LSTM output")
    p.add_argument("--train-batch-size", type=int, default=100, help="sketches per step")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=0.9999, help="learning rate multiplier per step")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm")
    p.add_argument("--max-steps", type=int, default=20_000, help="optimizer steps")
    p.add_argument("--max-train-minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--seed", type=int, default=0, help="of the initialisation, batches and dropout")
    p.add_argument("--checkpointing-steps", type=int, default=1000, help="save a checkpoint every N steps")
    p.add_argument("--checkpoints-total-limit", type=int, default=2, help="how many checkpoints to keep")
    p.add_argument("--resume-from-checkpoint", help="'latest' or a checkpoint folder")
    args = p.parse_args(argv)
    if min(args.train_batch_size, args.max_steps, args.hidden_size, args.num_mixtures, args.checkpointing_steps,
           args.checkpoints_total_limit) < 1 or args.max_seq_len < 2:
        p.error("--train-batch-size, --max-steps, --hidden-size, --num-mixtures, --checkpointing-steps and "
                "--checkpoints-total-limit must be at least 1, --max-seq-len at least 2")
    for name, ok, want in (("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
                           ("lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"), ("learning_rate", lambda v: v > 0, "> 0"),
                           ("max_grad_norm", lambda v: v > 0, "> 0"), ("max_train_minutes", lambda v: v > 0, "> 0")):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and ok(value)):
            p.error(f"--{name.replace('_', '-')} must be a finite number {want}, got {value}")
    return args


def pack_stroke5(sketches, max_seq_len: int) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Sketches -> ``stroke5 (N, max_seq_len, 5)`` scaled by the offsets' std, ``lengths (N,)``, the scale, dropped count."""
    stroke3 = [strokes_to_stroke3(s) for s in sketches]
    kept = [s for s in stroke3 if len(s) < max_seq_len]
    if not kept:
        raise ValueError(f"every training drawing has at least --max-seq-len={max_seq_len} points")
    scale = float(np.concatenate([s[1:, :2] for s in kept]).std())  # the first row is the absolute start point
    packed = np.stack([stroke3_to_stroke5(s / np.array([scale, scale, 1.0], np.float32), max_seq_len) for s in kept])
    return torch.from_numpy(packed), torch.tensor([len(s) for s in kept]), scale, len(stroke3) - len(kept)


def main(argv=None) -> None:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    output_dir = Path(args.output_dir)
    sketches, provenance = load_training_sketches(args)
    data, lengths, scale, dropped = pack_stroke5(sketches, args.max_seq_len)
    provenance["drawings"] = {"train_rows": len(sketches), "used": len(data),
                              "filtered_out": {f"at least {args.max_seq_len} points": dropped}}
    model = SketchRNNDecoder(hidden_size=args.hidden_size, num_mixtures=args.num_mixtures, max_seq_len=args.max_seq_len,
                             scale_factor=scale, dropout=args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    lr_schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    accelerator = Accelerator()  # for its checkpoints only (weights, optimizer, schedule, random states): no autocast
    if accelerator.num_processes > 1:
        raise ValueError("train_sketch_rnn.py runs in one process (python train_sketch_rnn.py ...), not under a "
                         "multi-process launch")
    accelerator.register_for_checkpointing(optimizer, lr_schedule)
    # the weights go into checkpoints as safetensors (a save_pretrained folder), not in Accelerate's pickles
    accelerator.register_save_state_pre_hook(lambda models, weights, folder: model.save_pretrained(
        os.path.join(folder, CHECKPOINT_WEIGHTS)))
    accelerator.register_load_state_pre_hook(lambda models, folder: model.load_state_dict(
        SketchRNNDecoder.from_pretrained(os.path.join(folder, CHECKPOINT_WEIGHTS)).state_dict()))
    checkpoint_dir = output_dir / "checkpoints"
    run = run_record(vars(args), RESUMABLE_OPTIONS, trainer="train_sketch_rnn.py",
                     data_sha1=provenance["data_file"]["sha1"], split_sha1=provenance["split"]["sha1"])
    resume, step, prior_seconds = resume_point(args.resume_from_checkpoint, checkpoint_dir, run, "another --output-dir")
    if resume is not None:
        accelerator.load_state(str(resume))
        logger.info("resumed from %s at step %d", resume, step)
    log_file = output_dir / "logs" / "train_log.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    trim_jsonl(log_file, step)  # steps past the checkpoint (or every step, starting afresh) are logged again

    start = time.time() - prior_seconds
    progress = tqdm(total=args.max_steps, initial=step, desc="steps")
    model.train()
    while step < args.max_steps:
        if args.max_train_minutes is not None and time.time() - start >= 60 * args.max_train_minutes:
            logger.info("time budget of %.1f minutes reached at step %d", args.max_train_minutes, step)
            break
        order = np.random.default_rng([args.seed, step]).choice(len(data), size=args.train_batch_size)
        batch, batch_lengths = data[order], lengths[order]
        cut = int(batch_lengths.max()) + 1  # trailing end rows beyond the longest sketch carry no information
        loss, offset_nll, pen_nll = model.loss(batch[:, :cut], batch_lengths)
        stop_if_not_finite(loss, "training loss", step + 1, checkpoint_dir)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        lr_schedule.step()
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.3f}")
        append_jsonl(log_file, {"step": step, "loss": loss.item(), "offset_nll": offset_nll.item(),
                                "pen_nll": pen_nll.item(), "elapsed_seconds": round(time.time() - start, 2)})
        if step % args.checkpointing_steps == 0 or step == args.max_steps:
            save_checkpoint(accelerator, checkpoint_dir, step, args.checkpoints_total_limit, time.time() - start, run)
    progress.close()
    if not (checkpoint_dir / f"checkpoint-{step}").is_dir():  # stopped by the time budget: keep it resumable
        save_checkpoint(accelerator, checkpoint_dir, step, args.checkpoints_total_limit, time.time() - start, run)

    save_pretrained_atomic(model.eval(), output_dir)
    write_json_atomic(output_dir / "training_config.json", vars(args))
    write_json_atomic(output_dir / "provenance.json", dict(
        provenance, category=args.category, steps=step, wall_time_seconds=round(time.time() - start, 1),
        scale_factor=scale, parameters=sum(p.numel() for p in model.parameters()), libraries=library_versions()))
    logger.info("saved the Sketch-RNN baseline to %s", output_dir)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, FloatingPointError) as exc:
        logging.getLogger("train_sketch_rnn").error("%s", exc)
        sys.exit(1)
