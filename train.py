"""Train one category's stroke-by-stroke sketch diffusion model with Accelerate.

    accelerate launch train.py --category cat --output-dir models/cat        # official data, downloaded if missing
    python train.py --category rabbit --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json

Writes a Hub-ready pipeline folder (EMA weights) to --output-dir, with ``training_config.json``,
``provenance.json``, checkpoints under ``checkpoints/``, samples under ``samples/`` and the loss logs
under ``logs/`` (``train_log.jsonl``; ``validation_log.jsonl`` with ``--validation-size``). Runs unchanged
on CPU, one GPU (``--mixed-precision bf16``) and several GPUs (DDP through ``accelerate config``).
Interrupted runs resume with ``--resume-from-checkpoint latest``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.data import OFFICIAL_FILES, load_split_sketches, resolve_split
from pipeline.download import resolve_data_file
from pipeline.provenance import library_versions
from pipeline.fileio import append_jsonl, file_digest, git_blob_sha1, write_bytes_atomic, write_json_atomic
from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel
from pipeline.pipeline_stroke_diffusion import StrokeDiffusionPipeline
from pipeline.rendering import image_grid, png_bytes, sketches_gif
from pipeline.representation import RESAMPLING_MODES, pack_sketches

logger = logging.getLogger("train")
CHECKPOINT_MARKER = "checkpoint.json"
EMA_FOLDER = "ema"  # a checkpoint's EMA weights, as a save_pretrained folder (safetensors, not accelerate's pickle)
RUN_SPECIFIC_OPTIONS = {"output_dir", "resume_from_checkpoint", "export_only", "config", "debug_kill_at_step", "help"}
# Options added with a default other than the behaviour before them: a saved config that lacks one was made with this.
DEFAULTS_BEFORE_THE_OPTION = {"head_conv_blocks": 0}


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data flags, shared with ``train_sketch_rnn.py`` so that both read the same drawings."""
    g = p.add_argument_group("data")
    g.add_argument("--category", required=True, help="Quick, Draw! category (cat, bus, rabbit or any word for custom data)")
    g.add_argument("--data", help="ndjson[.gz] file, or a folder holding <category>.ndjson; default: the official "
                                  "file in --data-dir, downloaded if missing")
    g.add_argument("--data-dir", default="data", help="where the official files are kept")
    g.add_argument("--no-download", action="store_true", help="fail instead of downloading missing official data")
    g.add_argument("--split", help="split JSON {'train': [...], 'test': [...]}, 'official', or 'all' (train on every "
                                   "drawing); default: official for the official file, else all")
    g.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "sketch_diffusion"),
                   help="cache of the Arrow datasets built from ndjson files")
    g.add_argument("--augment", type=float, default=0.5,
                   help="strength of random augmentation, each sketch re-fitted to the canvas afterwards (0 = off; "
                        "1 = rotations up to 10 degrees and each axis stretched by up to 15%%)")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(p)

    g = p.add_argument_group("model")
    g.add_argument("--points-per-stroke", type=int, default=32, help="points each stroke is resampled to")
    g.add_argument("--resampling", choices=RESAMPLING_MODES, default="arc_length",
                   help="how strokes become points_per_stroke points: equally spaced by arc length (corners are "
                        "cut), every vertex among the points with the rest spread along the segments, or the "
                        "vertices followed by copies of the last one")
    g.add_argument("--max-strokes", type=int, default=32, help="longest sketch; longer ones are filtered out")
    g.add_argument("--max-stroke-length", type=float, default=0.0,
                   help="cut training strokes longer than this (canvas pixels) into equal pieces, each one model "
                        "stroke (0 = strokes stay whole)")
    g.add_argument("--link-pieces", action="store_true",
                   help="with --max-stroke-length: the model predicts whether a stroke continues the previous one "
                        "and then starts it exactly at that one's end, so that pieces meet by construction")
    g.add_argument("--hidden-size", type=int, default=192, help="width of the stroke transformer")
    g.add_argument("--num-layers", type=int, default=4, help="layers of the stroke transformer")
    g.add_argument("--num-heads", type=int, default=4, help="attention heads")
    g.add_argument("--head-hidden-size", type=int, default=512, help="width of the denoiser MLP")
    g.add_argument("--head-num-blocks", type=int, default=4, help="adaLN blocks of the denoiser")
    g.add_argument("--head-conv-blocks", type=int, default=2,
                   help="residual 1-D convolution blocks along the points after the denoiser MLP (0 = the plain "
                        "MLP denoiser of the cat and bus releases)")
    g.add_argument("--head-conv-channels", type=int, default=32, help="channels of those convolutions")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout in the stroke transformer")
    g.add_argument("--context-dropout", type=float, default=0.1,
                   help="fraction of strokes trained with the null context instead of their history, which "
                        "enables classifier-free guidance at sampling time (0 = off)")
    g.add_argument("--history-noise", type=float, default=0.0,
                   help="exposure-bias regulariser: each stroke the transformer reads is moved by N(0, s) and "
                        "scaled about its centre by 1 + N(0, s), s in normalised units (canvas / 2); the "
                        "denoising targets stay clean (0 = off)")
    g.add_argument("--prediction-type", default="v_prediction", choices=("epsilon", "v_prediction", "sample"),
                   help="what the denoiser predicts; v_prediction lets sampling start from pure noise (see README)")
    g.add_argument("--num-train-timesteps", type=int, default=1000)
    g.add_argument("--beta-schedule", default="squaredcos_cap_v2", help="DDPM beta schedule")
    g.add_argument("--sampling-scheduler", default="dpm", choices=("ddim", "dpm", "ddpm"),
                   help="scheduler saved with the pipeline (any diffusers scheduler can be swapped in later)")
    g.add_argument("--guidance-scale", type=float, default=1.0,
                   help="default classifier-free guidance scale saved with the pipeline (1.0 = none; the README "
                        "measures why that is the default)")
    g.add_argument("--simplify-epsilon", type=float, default=2.0,
                   help="default RDP tolerance (canvas pixels) saved with the pipeline: how generated strokes are "
                        "simplified as history and in the output (the official files use 2)")
    g.add_argument("--smoothing-passes", type=int, default=0,
                   help="default smoothing saved with the pipeline: passes of the [1, 2, 1] / 4 filter along each "
                        "denoised stroke's points before it is simplified (0 = none; see README)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--train-batch-size", type=int, default=64, help="sketches per step per device")
    g.add_argument("--noise-draws", type=int, default=4, help="noise draws per stroke per step")
    g.add_argument("--timestep-power", type=float, default=1.0,
                   help="training timesteps are T * u ** p for uniform u: 1 = uniform, p > 1 trains more at low noise "
                        "(fine detail), p < 1 more at high noise (layout); validation loss stays uniform")
    g.add_argument("--stop-loss-weight", type=float, default=0.1, help="weight of the stop head's BCE loss")
    g.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --num-epochs)")
    g.add_argument("--num-epochs", type=int, default=100)
    g.add_argument("--max-train-minutes", type=float, default=None,
                   help="stop (and export) after this much training time; the LR schedule still follows --max-steps")
    g.add_argument("--gradient-accumulation-steps", type=int, default=1)
    g.add_argument("--learning-rate", type=float, default=1e-3)
    g.add_argument("--lr-scheduler", default="cosine",
                   help="constant, constant_with_warmup, linear, cosine, ... (diffusers.optimization)")
    g.add_argument("--lr-warmup-steps", type=int, default=200)
    g.add_argument("--adam-beta1", type=float, default=0.9)
    g.add_argument("--adam-beta2", type=float, default=0.99)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=True, help="keep an EMA of the weights")
    g.add_argument("--ema-max-decay", type=float, default=0.999)
    g.add_argument("--mixed-precision", default=None, choices=("no", "fp16", "bf16"),
                   help="default: accelerate config's choice")
    g.add_argument("--seed", type=int, default=0)

    g = p.add_argument_group("validation")
    g.add_argument("--validation-size", type=int, default=0,
                   help="hold out this many training drawings (chosen with --seed) and log their loss (0 = none)")
    g.add_argument("--validation-interval", type=int, default=250, help="log the validation loss every N steps")

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True, help="pipeline folder to write (also holds checkpoints, samples, logs)")
    g.add_argument("--checkpointing-steps", type=int, default=500, help="save a checkpoint every N steps")
    g.add_argument("--checkpoints-total-limit", type=int, default=3, help="how many checkpoints to keep")
    g.add_argument("--resume-from-checkpoint", help="'latest' or a checkpoint folder")
    g.add_argument("--export-only", action="store_true",
                   help="with --resume-from-checkpoint: write the pipeline folder from that checkpoint and exit")
    g.add_argument("--sample-interval", type=int, default=500, help="render samples every N steps (0 = never)")
    g.add_argument("--num-samples", type=int, default=16, help="sketches per sample grid")
    g.add_argument("--logger", default="auto", choices=("auto", "tensorboard", "none"),
                   help="Accelerate tracker; auto = tensorboard when installed")
    g.add_argument("--config", help="a run's training_config.json: its options become the defaults and the flags "
                                    "given here override them (e.g. to export one of the run's checkpoints)")
    g.add_argument("--debug-kill-at-step", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.config:
        p.set_defaults(**read_run_config(args.config, p))
        args = p.parse_args(argv)
    for name in ("train_batch_size", "noise_draws", "points_per_stroke", "max_strokes", "checkpointing_steps",
                 "gradient_accumulation_steps", "num_epochs", "checkpoints_total_limit", "validation_interval",
                 "head_conv_channels"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_steps is not None and args.max_steps < 1:
        p.error("--max-steps must be at least 1")
    for name in ("validation_size", "head_conv_blocks", "smoothing_passes"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.export_only and not args.resume_from_checkpoint:
        p.error("--export-only needs --resume-from-checkpoint")
    if not 0.0 <= args.context_dropout < 1.0:
        p.error(f"--context-dropout must be in [0, 1), got {args.context_dropout}")
    if args.timestep_power <= 0:
        p.error(f"--timestep-power must be > 0, got {args.timestep_power}")
    if args.history_noise < 0:
        p.error(f"--history-noise must be >= 0, got {args.history_noise}")
    if args.simplify_epsilon < 0:
        p.error(f"--simplify-epsilon must be >= 0, got {args.simplify_epsilon}")
    if args.guidance_scale < 0:
        p.error(f"--guidance-scale must be >= 0, got {args.guidance_scale}")
    if args.link_pieces and args.max_stroke_length <= 0:
        p.error("--link-pieces needs --max-stroke-length > 0 (without cutting there are no pieces to link)")
    if args.guidance_scale != 1.0 and args.context_dropout == 0:
        p.error("--guidance-scale other than 1.0 needs --context-dropout > 0 (the null context is never trained otherwise)")
    return args


def read_run_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """The options saved in a run's ``training_config.json`` that this parser knows, less the run-specific ones
    (output folder, resuming, export); options of older versions are reported and skipped, and options newer than
    the run take the value that reproduces it where that is not today's default (``DEFAULTS_BEFORE_THE_OPTION``)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--config {path}: cannot read a training config ({err})")
    if not isinstance(saved, dict):
        parser.error(f"--config {path}: expected a JSON object of options, got {type(saved).__name__}")
    known = {action.dest for action in parser._actions} - RUN_SPECIFIC_OPTIONS
    stale = sorted(set(saved) - known - RUN_SPECIFIC_OPTIONS)
    if stale:
        print(f"--config {path}: skipping options this train.py does not have: {', '.join(stale)}", file=sys.stderr)
    return {**DEFAULTS_BEFORE_THE_OPTION, **{k: v for k, v in saved.items() if k in known}}


# ----------------------------------------------------------------------------- data


def load_training_sketches(args) -> tuple[list, dict]:
    """Resolve the data file and split; return the train sketches (lists of ``(n, 2)`` pixel arrays) and provenance."""
    data_file = resolve_data_file(args.category, args.data, args.data_dir, allow_download=not args.no_download)
    split, split_source = resolve_split(data_file, args.category, args.split)
    train = load_split_sketches(data_file, split, Path(args.cache_dir) / "datasets")["train"]
    if not train:
        raise ValueError(f"the split ({split_source}) selects no training drawings from {data_file}")
    provenance = {
        "data_file": {"path": str(data_file), "bytes": os.path.getsize(data_file),
                      "sha1": file_digest(data_file, "sha1"), "git_blob_sha1": git_blob_sha1(data_file),
                      "official": _is_official(data_file, args.category)},
        "split": {"source": split_source, "train": len(split["train"]), "test": len(split["test"])},
    }
    return train, provenance


def load_training_data(args):
    """Sketches packed for the model and provenance: ``(strokes (N, S, P, 2), lengths (N,))`` to train on and the
    same for the ``--validation-size`` held-out drawings (empty tensors when none are held out)."""
    train, provenance = load_training_sketches(args)
    strokes, lengths, kept = pack_sketches(train, args.points_per_stroke, args.max_strokes, args.resampling,
                                          args.max_stroke_length)
    if len(kept) == 0:
        raise ValueError(f"every training drawing has more than --max-strokes={args.max_strokes} strokes")
    if args.validation_size >= len(kept):
        raise ValueError(f"--validation-size {args.validation_size} leaves nothing to train on ({len(kept)} drawings)")
    order = np.random.default_rng([args.seed, len(kept)]).permutation(len(kept))
    held_out, used = np.sort(order[: args.validation_size]), np.sort(order[args.validation_size :])
    provenance["drawings"] = {"train_rows": len(train), "used": int(len(used)), "validation": int(len(held_out)),
                              "filtered_out": {f"more than {args.max_strokes} strokes": int(len(train) - len(kept))}}
    strokes, lengths = torch.from_numpy(strokes), torch.from_numpy(lengths)
    return (strokes[used], lengths[used]), (strokes[held_out], lengths[held_out]), provenance


def _is_official(path, category) -> bool:
    spec = OFFICIAL_FILES.get(category)
    return spec is not None and git_blob_sha1(path) == spec.git_blob_sha1


def augment(strokes: torch.Tensor, lengths: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly rotate (up to 10 degrees x strength) and stretch each axis (up to 15% x strength) every sketch of
    ``strokes (B, S, P, 2)`` in [-1, 1] with ``lengths (B,)``, then fit it to the canvas again as the official files
    are (longer side spanning [-1, 1], touching the top and left edges). Padding strokes stay zero."""
    if strength <= 0:
        return strokes
    b, s = strokes.shape[:2]
    u = torch.rand(b, 3, generator=generator) * 2 - 1
    angle = math.radians(10) * strength * u[:, 0]
    sx, sy = 1 + 0.15 * strength * u[:, 1], 1 + 0.15 * strength * u[:, 2]
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrix = torch.stack([torch.stack([cos * sx, -sin * sy], -1), torch.stack([sin * sx, cos * sy], -1)], -2)
    out = torch.einsum("bij,bspj->bspi", matrix, strokes)
    valid = (torch.arange(s)[None, :] < lengths[:, None])[:, :, None, None]  # (B, S, 1, 1)
    low = torch.where(valid, out, torch.inf).amin(dim=(1, 2))  # (B, 2)
    high = torch.where(valid, out, -torch.inf).amax(dim=(1, 2))
    extent = (high - low).amax(dim=-1).clamp_min(1e-6)  # (B,)
    out = (out - low[:, None, None, :]) * (2.0 / extent)[:, None, None, None] - 1.0
    return torch.where(valid, out, torch.zeros(()))


def batch_indices(step: int, micro: int, args, num_items: int, process: int, num_processes: int) -> np.ndarray:
    """Indices of the sketches in one micro-batch: a fresh seeded permutation every epoch, sharded by process."""
    per_step = args.train_batch_size * num_processes
    position = (step * args.gradient_accumulation_steps + micro) * per_step
    epoch, offset = divmod(position, num_items)
    order = np.random.default_rng([args.seed, epoch]).permutation(num_items)
    order = np.concatenate([order, np.random.default_rng([args.seed, epoch + 1]).permutation(num_items)])
    return order[offset : offset + per_step][process::num_processes]


# ----------------------------------------------------------------------------- loss


def perturb_strokes(strokes: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Move each stroke of ``strokes (B, S, P, 2)`` (normalised units) by N(0, sigma) and scale it about its
    centre by 1 + N(0, sigma): the placement and size errors a model's own strokes carry at sampling time."""
    b, s = strokes.shape[:2]
    shift = sigma * torch.randn(b, s, 1, 2, generator=generator).to(strokes)
    scale = 1 + sigma * torch.randn(b, s, 1, 1, generator=generator).to(strokes)
    centre = strokes.mean(dim=2, keepdim=True)
    return centre + scale * (strokes - centre) + shift


def sample_timesteps(n: int, num_train_timesteps: int, power: float, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` int64 training timesteps ``floor(T * u ** power)`` for uniform ``u`` in [0, 1): uniform for power 1
    (drawn as ``randint``, the recipe's original draws), more of them near 0 (low noise) for power > 1."""
    if power == 1.0:
        return torch.randint(0, num_train_timesteps, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (num_train_timesteps * u ** power).long().clamp(max=num_train_timesteps - 1)


class DiffusionObjective(torch.nn.Module):
    """Wraps the model so that one ``forward`` computes the training loss (what DDP needs to sync gradients)."""

    def __init__(self, model: StrokeDiffusionModel, noise_scheduler, noise_draws: int, stop_loss_weight: float,
                 history_noise: float = 0.0, timestep_power: float = 1.0):
        super().__init__()
        self.model, self.noise_scheduler = model, noise_scheduler
        self.noise_draws, self.stop_loss_weight, self.history_noise = noise_draws, stop_loss_weight, history_noise
        self.timestep_power = timestep_power

    def forward(self, strokes: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator):
        """Teacher-forced loss of ``strokes (B, S, P, 2)`` in [-1, 1] with ``lengths (B,)``.

        One encoder pass gives the context of every stroke; every real stroke is noised ``noise_draws``
        times at timesteps from ``sample_timesteps`` (noise drawn from ``generator`` on the CPU), and in training mode a
        ``context_dropout`` fraction of them sees the model's null context instead of its history, and the
        history the transformer reads is perturbed by ``history_noise``. Returns ``(total, denoising_loss, stop_loss)``;
        for a ``link_pieces`` model ``stop_loss`` also holds the loss of predicting which strokes continue the
        previous one (both are decisions taken between strokes).
        """
        device, s = strokes.device, strokes.shape[1]
        link_pieces = self.model.config.link_pieces
        links = self.model.stroke_links(strokes) if link_pieces else None  # from the clean strokes
        history = strokes
        if self.training and self.history_noise > 0:
            history = perturb_strokes(strokes, self.history_noise, generator)
        context = self.model.encode_history(history, links)  # (B, S + 1, D)
        positions = torch.arange(s + 1, device=device)
        valid = positions[None, :s] < lengths[:, None]  # strokes that exist

        cond = context[:, :s]
        if link_pieces:  # a continuing stroke's denoiser is told where the previous stroke ended
            previous_end = torch.cat([torch.zeros_like(strokes[:, :1, -1]), strokes[:, :-1, -1]], dim=1)
            cond = self.model.continuation_context(cond, links, previous_end)
        x0 = strokes[valid].repeat(self.noise_draws, 1, 1)  # (N, P, 2)
        cond = cond[valid].repeat(self.noise_draws, 1)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        t = sample_timesteps(x0.shape[0], self.noise_scheduler.config.num_train_timesteps, self.timestep_power,
                             generator).to(device)
        if self.training and self.model.config.context_dropout > 0:
            drop = torch.rand(x0.shape[0], generator=generator).to(device) < self.model.config.context_dropout
            cond = torch.where(drop[:, None], self.model.null_context.to(cond.dtype), cond)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "sample":
            target = x0
        else:
            target = self.noise_scheduler.get_velocity(x0, noise, t)
        denoise_loss = F.mse_loss(self.model(noisy, t, cond).float(), target.float())

        stop_mask = positions[None, :] <= lengths[:, None]  # decisions taken after 0..n strokes
        stop_target = (positions[None, :] == lengths[:, None]).float()
        stop_logits = self.model.stop_logits(context).float()
        stop_loss = F.binary_cross_entropy_with_logits(stop_logits[stop_mask], stop_target[stop_mask])
        if link_pieces:
            link_mask = valid & (positions[None, :s] > 0)  # whether stroke k >= 1 continues stroke k - 1
            link_loss = F.binary_cross_entropy_with_logits(self.model.link_logits(context[:, :s]).float(), links.float(),
                                                           weight=link_mask.float(), reduction="sum")
            stop_loss = stop_loss + link_loss / link_mask.sum().clamp(min=1)
        return denoise_loss + self.stop_loss_weight * stop_loss, denoise_loss, stop_loss


@torch.no_grad()
def validation_loss(model: StrokeDiffusionModel, noise_scheduler, strokes: torch.Tensor, lengths: torch.Tensor,
                    args) -> dict:
    """Denoising and stop losses of held-out sketches: the same noise every time, no context dropout."""
    objective = DiffusionObjective(model, noise_scheduler, args.noise_draws, args.stop_loss_weight).eval()
    generator = torch.Generator().manual_seed(args.seed)
    sums, count = np.zeros(2), 0
    for start in range(0, len(strokes), args.train_batch_size):
        batch = slice(start, start + args.train_batch_size)
        _, denoise, stop = objective(strokes[batch], lengths[batch], generator)
        n = len(strokes[batch])
        sums, count = sums + n * np.array([denoise.item(), stop.item()]), count + n
    return {"val_denoise_loss": sums[0] / count, "val_stop_loss": sums[1] / count}


# ----------------------------------------------------------------------------- checkpoints


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints (with their marker file), oldest first."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and (p / CHECKPOINT_MARKER).is_file()
             and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def save_checkpoint(accelerator, folder: Path, step: int, limit: int, elapsed_seconds: float = 0.0) -> Path:
    """``accelerator.save_state`` into a temporary folder, record file hashes, then rename into place.

    An interrupted or failed write (disk full, kill) leaves the previous checkpoints untouched; old
    checkpoints beyond ``limit`` are removed only after the new one is complete.
    """
    final = folder / f"checkpoint-{step}"
    tmp = folder / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            files = {str(f.relative_to(tmp)): file_digest(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
            write_json_atomic(tmp / CHECKPOINT_MARKER, {"step": step, "elapsed_seconds": round(elapsed_seconds, 2),
                                                        "files": files})
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in list_checkpoints(folder)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def verify_checkpoint(path: Path) -> tuple[int, float]:
    """Check a checkpoint against its marker; return its step and training seconds, or raise naming what is wrong."""
    marker = path / CHECKPOINT_MARKER
    if not marker.is_file():
        raise ValueError(f"{path} is not a complete checkpoint (no {CHECKPOINT_MARKER}); it may be from an interrupted save")
    try:
        info = json.loads(marker.read_text())
        step, files = int(info["step"]), info["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{marker} is unreadable ({exc})") from None
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise ValueError(f"checkpoint {path} is corrupted: {name} is missing")
        if file_digest(f) != digest:
            raise ValueError(f"checkpoint {path} is corrupted: {name} does not match its recorded sha256")
    return step, float(info.get("elapsed_seconds", 0.0))


def resolve_resume(arg: str, folder: Path) -> Path | None:
    if arg == "latest":
        found = list_checkpoints(folder)
        return found[-1] if found else None
    path = Path(arg)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume-from-checkpoint {arg}: no such folder")
    return path


# ----------------------------------------------------------------------------- pipeline export


def build_schedulers(args):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    train_scheduler = DDPMScheduler(num_train_timesteps=args.num_train_timesteps, beta_schedule=args.beta_schedule,
                                    prediction_type=args.prediction_type, clip_sample=True)
    sampler_cls = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}[args.sampling_scheduler]
    # Sampling should start from pure noise: t = 999, where the cosine schedule's alpha_bar is ~0. v and sample
    # prediction are well defined there ("trailing" spacing starts at 999). Epsilon prediction is not (x0 = (x - eps)
    # / sqrt(alpha_bar) blows up and DPM-Solver diverges), so it gets "leading" spacing (first step t = 900 of 10), which
    # starts from noise the model reads as a slightly noised stroke: strokes come out shorter and more numerous.
    spacing = "leading" if args.prediction_type == "epsilon" else "trailing"
    return train_scheduler, sampler_cls.from_config(train_scheduler.config, timestep_spacing=spacing)


def build_model(args) -> StrokeDiffusionModel:
    """A freshly initialised ``StrokeDiffusionModel`` with the model options of ``args``."""
    return StrokeDiffusionModel(
        points_per_stroke=args.points_per_stroke, resampling=args.resampling,
        max_stroke_length=args.max_stroke_length, link_pieces=args.link_pieces, max_strokes=args.max_strokes,
        hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
        head_hidden_size=args.head_hidden_size, head_num_blocks=args.head_num_blocks,
        head_conv_blocks=args.head_conv_blocks, head_conv_channels=args.head_conv_channels, dropout=args.dropout,
        context_dropout=args.context_dropout)


def make_pipeline(model, sampling_scheduler, args) -> StrokeDiffusionPipeline:
    """The pipeline that ``model`` is saved and sampled in, with the sampling defaults of ``args``."""
    pipe = StrokeDiffusionPipeline(transformer=model, scheduler=sampling_scheduler,
                                   default_guidance_scale=args.guidance_scale,
                                   default_simplify_epsilon=args.simplify_epsilon,
                                   default_smoothing_passes=args.smoothing_passes)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_samples(pipe, out_dir: Path, step: int, num: int, seed: int) -> None:
    out = pipe(num_sketches=num, generator=torch.Generator().manual_seed(seed), image_size=128, line_width=2.0)
    write_bytes_atomic(out_dir / f"step-{step:06d}.png", png_bytes(image_grid(out.images)))
    write_bytes_atomic(out_dir / f"step-{step:06d}.gif", sketches_gif(out.strokes, size=128, line_width=2.0))


def hardware(accelerator) -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": str(accelerator.device),
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ----------------------------------------------------------------------------- main


def main(argv=None) -> None:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    log_with = args.logger
    if log_with == "auto":
        try:
            import tensorboard  # noqa: F401  (only probing whether it is installed)
            log_with = "tensorboard"
        except ImportError:
            log_with = "none"
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
        log_with=None if log_with == "none" else log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cores = os.cpu_count() or 1
    if accelerator.device.type == "cpu" and torch.get_num_threads() == 1 and cores > 1:
        logger.warning("training on the CPU with 1 of %d cores (OMP_NUM_THREADS=%s; `accelerate launch` sets 1 unless "
                       "given --num_cpu_threads_per_process): `python train.py ...` or `accelerate launch "
                       "--num_cpu_threads_per_process %d train.py ...` uses them all (twice as fast on 2 cores)",
                       cores, os.environ.get("OMP_NUM_THREADS", "unset"), cores)
    torch.manual_seed(args.seed)

    (strokes, lengths), (val_strokes, val_lengths), provenance = load_training_data(args)
    logger.info("training on %d sketches (%s), %d held out for validation", len(strokes),
                provenance["split"]["source"], len(val_strokes))

    model = build_model(args)
    noise_scheduler, sampling_scheduler = build_schedulers(args)
    ema = EMAModel(model.parameters(), decay=args.ema_max_decay, use_ema_warmup=True,
                   model_cls=StrokeDiffusionModel, model_config=model.config) if args.use_ema else None

    steps_per_epoch = math.ceil(len(strokes) / (args.train_batch_size * accelerator.num_processes
                                                * args.gradient_accumulation_steps))
    max_steps = args.max_steps or args.num_epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.weight_decay)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps,
                                 num_training_steps=max_steps)
    objective = DiffusionObjective(model, noise_scheduler, args.noise_draws, args.stop_loss_weight, args.history_noise,
                                   args.timestep_power)
    objective, optimizer, lr_scheduler = accelerator.prepare(objective, optimizer, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)

        def save_ema(models, weights, folder: str) -> None:
            if accelerator.is_main_process:
                ema.save_pretrained(os.path.join(folder, EMA_FOLDER))

        def load_ema(models, folder: str) -> None:
            path = Path(folder) / EMA_FOLDER
            if not path.is_dir():
                raise ValueError(f"checkpoint {folder} has no {EMA_FOLDER}/ folder of EMA weights (saved without EMA, or "
                                 "by a train.py older than 2026-11-23); resume it with --no-use-ema or start afresh")
            saved = json.loads((path / "config.json").read_text())  # the model's config plus the EMA's decay and step
            other = [f"{k}={saved[k]!r} there, {v!r} here" for k, v in model.config.items()
                     if not k.startswith("_") and k in saved and saved[k] != v]
            if other:
                raise ValueError(f"checkpoint {folder} is of another model ({'; '.join(other)}): resume with the "
                                 "run's options, e.g. --config with its training_config.json, or the flags it used")
            weights = load_file(path / SAFETENSORS_WEIGHTS_NAME, device=str(accelerator.device))
            state = {key: saved[key] for key in ema.state_dict() if key != "shadow_params"}
            shadow = [weights[name] for name, _ in model.named_parameters()]  # the order the EMA was built in
            ema.load_state_dict(dict(state, shadow_params=shadow))

        accelerator.register_save_state_pre_hook(save_ema)
        accelerator.register_load_state_pre_hook(load_ema)
    sketches_per_step = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps

    def unwrapped_model() -> StrokeDiffusionModel:
        return accelerator.unwrap_model(objective).model

    def export_model() -> StrokeDiffusionModel:
        """A float32 CPU copy of the weights to ship: the EMA weights when EMA is on."""
        copy = StrokeDiffusionModel.from_config(unwrapped_model().config)
        if ema is not None:
            ema.copy_to(copy.parameters())
        else:
            copy.load_state_dict(unwrapped_model().state_dict())
        return copy.float().eval()

    global_step, prior_seconds = 0, 0.0
    if args.resume_from_checkpoint:
        path = resolve_resume(args.resume_from_checkpoint, checkpoint_dir)
        if path is None:
            logger.info("no checkpoint in %s: starting from scratch", checkpoint_dir)
        else:
            global_step, prior_seconds = verify_checkpoint(path)
            accelerator.load_state(str(path))
            logger.info("resumed from %s at step %d", path, global_step)

    def export(step: int, wall_seconds: float) -> None:
        stale = [name for name in ("metrics.json", "metrics.grid.png", "sample.gif", "README.md")
                 if (output_dir / name).is_file()]
        make_pipeline(export_model(), sampling_scheduler, args).save_pretrained(output_dir)
        write_json_atomic(output_dir / "training_config.json", vars(args))
        record = dict(provenance, category=args.category, steps=step, max_steps=max_steps,
                      sketches_seen=step * sketches_per_step,
                      wall_time_seconds=round(wall_seconds, 1), ema=args.use_ema, hardware=hardware(accelerator),
                      libraries=library_versions(),
                      parameters=sum(p.numel() for p in unwrapped_model().parameters()),
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json_atomic(output_dir / "provenance.json", record)
        logger.info("saved the pipeline to %s", output_dir)
        if stale:
            logger.warning("%s still holds %s of the weights it held before: run evaluate.py on the new model before "
                           "releasing it (pipeline.release refuses metrics of other weights)", output_dir,
                           ", ".join(stale))

    if args.export_only:
        if accelerator.is_main_process:
            export(global_step, prior_seconds)
        return

    if accelerator.is_main_process:
        accelerator.init_trackers("train", config={k: v for k, v in vars(args).items() if v is not None})
    log_file = output_dir / "logs" / "train_log.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)

    start, start_step = time.time(), global_step
    saved_step = global_step
    progress = tqdm(total=max_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="steps")
    objective.train()
    while global_step < max_steps:
        if args.max_train_minutes is not None and prior_seconds + time.time() - start >= 60 * args.max_train_minutes:
            logger.info("time budget of %.1f minutes reached at step %d", args.max_train_minutes, global_step)
            break
        for micro in range(args.gradient_accumulation_steps):
            idx = batch_indices(global_step, micro, args, len(strokes), accelerator.process_index,
                                accelerator.num_processes)
            seed = np.random.SeedSequence([args.seed, global_step, micro, accelerator.process_index])
            generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
            batch = augment(strokes[idx], lengths[idx], args.augment, generator).to(accelerator.device)
            with accelerator.accumulate(objective), accelerator.autocast():
                loss, denoise_loss, stop_loss = objective(batch, lengths[idx].to(accelerator.device), generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(objective.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
        if ema is not None:
            ema.step(unwrapped_model().parameters())
        global_step += 1

        elapsed = prior_seconds + time.time() - start
        logs = {"loss": loss.item(), "denoise_loss": denoise_loss.item(), "stop_loss": stop_loss.item(),
                "lr": lr_scheduler.get_last_lr()[0], "step": global_step}
        progress.update(1)
        sketches_per_s = (global_step - start_step) * sketches_per_step / max(time.time() - start, 1e-9)
        progress.set_postfix(loss=f"{logs['loss']:.4f}", sketches_per_s=f"{sketches_per_s:.0f}")
        accelerator.log(logs, step=global_step)
        if accelerator.is_main_process:
            append_jsonl(log_file, dict(logs, elapsed_seconds=round(elapsed, 2)))

        if global_step % args.checkpointing_steps == 0 or global_step == max_steps:
            save_checkpoint(accelerator, checkpoint_dir, global_step, args.checkpoints_total_limit, elapsed)
            saved_step = global_step
        if accelerator.is_main_process and len(val_strokes) and global_step % args.validation_interval == 0:
            val = validation_loss(export_model(), noise_scheduler, val_strokes, val_lengths, args)
            accelerator.log(val, step=global_step)
            append_jsonl(log_file.with_name("validation_log.jsonl"), dict(val, step=global_step,
                                                                          elapsed_seconds=round(elapsed, 2)))
            logger.info("step %d: validation denoise loss %.4f, stop loss %.4f", global_step, *val.values())
        if accelerator.is_main_process and args.sample_interval and global_step % args.sample_interval == 0:
            render_samples(make_pipeline(export_model(), sampling_scheduler, args), output_dir / "samples",
                           global_step, args.num_samples, args.seed)
        if args.debug_kill_at_step is not None and global_step == args.debug_kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)  # for the resume test: die like a killed job
    progress.close()
    if saved_step != global_step:  # stopped by the time budget: keep the final state resumable
        save_checkpoint(accelerator, checkpoint_dir, global_step, args.checkpoints_total_limit,
                        prior_seconds + time.time() - start)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export(global_step, prior_seconds + time.time() - start)
    accelerator.end_training()


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as exc:
        logging.getLogger("train").error("%s", exc)
        sys.exit(1)
