"""Consistency distillation of a trained pipeline's stroke denoiser into a few-step one, sampled with LCMScheduler.

The teacher (the pipeline's ``transformer`` with its DPM-Solver++ scheduler at ``DEFAULT_NUM_INFERENCE_STEPS``) draws
every stroke of two sets of sketches from fresh noise: sketches it drew itself (the histories it meets when sampling)
and the training drawings of its ``training_config.json``. Each point ``x_t`` of those trajectories is a training input
whose target is the trajectory's end. The student, a copy of the teacher whose encoder and stop head stay frozen,
learns to jump from any such point to the end in one call, seeing the strokes drawn before it as the teacher did, in
``LCMScheduler``'s parameterisation (the teacher's ``prediction_type`` and LCM's boundary scalings). ``LCMScheduler``
with ``original_inference_steps`` = the teacher's steps then samples it on a subset of the teacher's timesteps:
``DISTILLED_NUM_INFERENCE_STEPS`` model calls a stroke.

A second, adversarial phase (adversarial diffusion distillation, Sauer et al. 2023, in small) then sharpens the
one-step strokes: a ``StrokeDiscriminator`` learns to tell the training drawings' real strokes from the student's
one-step strokes given the same real histories, and the student learns to fool it while it keeps the distillation
loss, the two balanced by their gradient norms at the student's last layer (``adaptive_weight``).

``distill.py`` is the command line; ``distill`` below is the whole run: trajectories (cached in the work folder),
training with checkpoints and resume, export into the pipeline folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel
from pipeline.pipeline_stroke_diffusion import DEFAULT_NUM_INFERENCE_STEPS, StrokeDiffusionPipeline
from pipeline.representation import pack_sketches

from .fileio import append_jsonl, atomic_path, file_digest, trim_jsonl, write_json_atomic
from .provenance import library_versions
from .release import load_with_this_checkout, save_pretrained_atomic
from .settings import DefaultsHelpFormatter, default_cache_dir, pipeline_folder
from .training import (load_training_data, resolve_mixed_precision, resume_point, run_record, save_checkpoint,
                       stop_if_not_finite)

FROZEN = ("stroke_embed", "start_token", "position_embed", "blocks", "ln_f", "stop_head", "null_context")
# options a resumed distillation may change (where things go, how long (a change is logged: it reshapes the
# learning-rate schedule; refused with an adversarial phase, whose start it would move), how often it saves and logs,
# the autocast; the teacher is checked by its weights' sha256)
RESUMABLE_OPTIONS = {"model", "output_dir", "overwrite_output_dir", "work_dir", "resume_from_checkpoint", "max_steps",
                     "checkpointing_steps", "checkpoints_total_limit", "log_interval", "cache_dir", "mixed_precision"}
TRAJECTORIES = "teacher_trajectories.safetensors"
logger = logging.getLogger(__name__)


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=DefaultsHelpFormatter)
    p.add_argument("--model", required=True, type=pipeline_folder,
                   help="trained pipeline folder (train.py's --output-dir): the teacher")
    p.add_argument("--output-dir", help="where the distilled pipeline goes; default: --model itself, which gains "
                                        "distilled_transformer/ and LCMScheduler as its scheduler (file by file, "
                                        "each write atomic)")
    p.add_argument("--work-dir", help="teacher trajectories, checkpoints and logs; default: outputs/distill-<model>")
    p.add_argument("--teacher-sketches", type=int, default=20_000,
                   help="sketches the teacher draws whose strokes (with the training drawings') are distilled")
    p.add_argument("--max-steps", type=int, default=5000,
                   help="steps of the consistency phase (the run has --max-steps + --adversarial-steps)")
    p.add_argument("--batch-size", type=int, default=512,
                   help="trajectory points per step, on average (each step takes every stroke of random sketches)")
    p.add_argument("--learning-rate", type=float, default=3e-4, help="AdamW")
    p.add_argument("--lr-warmup-steps", type=int, default=100, help="then cosine decay to 0")
    p.add_argument("--first-step-fraction", type=float, default=0.7,
                   help="fraction of each batch at the first timestep (pure noise), where every sampling run starts")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping")
    p.add_argument("--adversarial-steps", type=int, default=2000,
                   help="steps of the adversarial phase after --max-steps, the discriminator's warm-up included; 0: "
                        "none")
    p.add_argument("--discriminator-warmup-steps", type=int, default=500,
                   help="first steps of the adversarial phase in which only the discriminator learns")
    p.add_argument("--adversarial-weight", type=float, default=0.5,
                   help="the adversarial loss's weight relative to the distillation loss, after their gradients at "
                        "the student's last layer are balanced")
    p.add_argument("--adversarial-learning-rate", type=float, default=2e-5,
                   help="the student's AdamW in the adversarial phase, cosine decay to 0")
    p.add_argument("--discriminator-learning-rate", type=float, default=4e-4,
                   help="the discriminator's AdamW, constant")
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16", "fp16"),
                   help="autocast of the student's forward; auto: bf16 where the device computes it natively, else no. "
                        "With bf16 the folder samples the student under bf16 autocast too, where native "
                        "(distilled_mixed_precision)")
    p.add_argument("--seed", type=int, default=0,
                   help="of the teacher's sketches and paths, the batches, and the discriminator's initialisation")
    p.add_argument("--cache-dir", default=str(default_cache_dir()),
                   help="cache of the Arrow datasets built from the training data file")
    p.add_argument("--checkpointing-steps", type=int, default=1000, help="save a checkpoint every N steps")
    p.add_argument("--checkpoints-total-limit", type=int, default=2, help="how many checkpoints to keep")
    p.add_argument("--resume-from-checkpoint", default="latest",
                   help="'latest' (in --work-dir), a checkpoint folder, or 'none'")
    p.add_argument("--log-interval", type=int, default=100, help="steps between loss log lines")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="write into an --output-dir (other than --model) that already holds a pipeline, replacing it")
    args = p.parse_args(argv)
    for name in ("teacher_sketches", "max_steps", "batch_size", "checkpointing_steps", "checkpoints_total_limit",
                 "log_interval"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.adversarial_steps < 0 or args.discriminator_warmup_steps < 0 or (
            args.adversarial_steps and args.discriminator_warmup_steps >= args.adversarial_steps):
        p.error("--adversarial-steps must be >= 0 and --discriminator-warmup-steps in [0, --adversarial-steps), got "
                f"{args.adversarial_steps} and {args.discriminator_warmup_steps}")
    if args.adversarial_steps and args.batch_size < 2:
        p.error(f"--batch-size must be at least 2 with an adversarial phase (half of it are its real strokes), got "
                f"{args.batch_size}")
    if not (math.isfinite(args.adversarial_weight) and args.adversarial_weight >= 0):
        p.error(f"--adversarial-weight must be >= 0, got {args.adversarial_weight}")
    if not 0 <= args.first_step_fraction <= 1:
        p.error(f"--first-step-fraction must be in [0, 1], got {args.first_step_fraction}")
    for name in ("learning_rate", "max_grad_norm", "lr_warmup_steps", "adversarial_learning_rate",
                 "discriminator_learning_rate"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            p.error(f"--{name.replace('_', '-')} must be > 0, got {value}")
    args.output_dir = args.output_dir or args.model
    other = Path(args.output_dir).resolve() != Path(args.model).resolve()
    if other and (Path(args.output_dir) / "model_index.json").is_file() and not args.overwrite_output_dir:
        p.error(f"--output-dir {args.output_dir} already holds a pipeline: the distilled copy of --model would replace "
                "it. Choose another --output-dir, or pass --overwrite-output-dir")
    args.work_dir = args.work_dir or str(Path("outputs") / f"distill-{Path(args.model).resolve().name}")
    return args


def load_teacher(model_dir: Path) -> StrokeDiffusionPipeline:
    """The folder's pipeline in this checkout's classes, sampling its ``transformer`` with its DDPM-family scheduler
    (DPM-Solver++ for a folder already distilled)."""
    from diffusers import DPMSolverMultistepScheduler

    pipe = load_with_this_checkout(model_dir)
    if pipe.uses_distilled:
        pipe = pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    if pipe.config.default_guidance_scale != 1.0:
        raise ValueError(f"{model_dir} samples with guidance_scale {pipe.config.default_guidance_scale}; distillation "
                         "handles unguided teachers (default_guidance_scale 1.0) only")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def training_sketches(model_dir: Path, cache_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's training drawings, packed ``(strokes (N, S, P, 2), lengths (N,))``, read with its
    ``training_config.json`` (data file, split, held-out validation drawings left out)."""
    config_file = model_dir / "training_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} is missing: the teacher's training data is read from it")
    config = json.loads(config_file.read_text())
    for name in ("data", "split"):
        value = config.get(name)
        if value and value not in ("official", "all") and not Path(value).exists():
            raise FileNotFoundError(f"{config_file} trained on {name} {value}, which is not there from {Path.cwd()}: "
                                    "run distill.py from the folder train.py ran in")
    args = argparse.Namespace(**{**config, "no_download": True, "cache_dir": cache_dir})
    (strokes, lengths), _, _ = load_training_data(args)
    return strokes, lengths


def teacher_sketches(teacher: StrokeDiffusionPipeline, num: int, generator, batch_size: int = 1000):
    """``num`` sketches the teacher draws, packed as the history encoder read them: ``(strokes, lengths)``."""
    from tqdm.auto import tqdm

    config, sketches = teacher.transformer.config, []
    for start in tqdm(range(0, num, batch_size), desc="teacher sketches", unit="batch"):
        sketches += teacher(num_sketches=min(batch_size, num - start), generator=generator, stroke_format="raw",
                            output_type="strokes").strokes
    strokes, lengths, _ = pack_sketches(sketches, config.points_per_stroke, config.max_strokes)
    return torch.from_numpy(strokes), torch.from_numpy(lengths)


@torch.no_grad()
def teacher_trajectories(teacher: StrokeDiffusionPipeline, strokes: torch.Tensor, lengths: torch.Tensor, generator,
                         batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """For every stroke of ``strokes (N, S, P, 2)`` with ``lengths (N,)``: its history's context ``(M, D)`` and the
    teacher's denoising trajectory from fresh noise ``(steps + 1, M, P, 2)`` (noise first, the drawn stroke last),
    drawn given the strokes before it."""
    from tqdm.auto import tqdm

    contexts, paths, device = [], [], teacher.transformer.device
    for start in tqdm(range(0, len(strokes), batch_size), desc="teacher trajectories", unit="batch"):
        batch, n = strokes[start : start + batch_size].to(device), lengths[start : start + batch_size].to(device)
        context, _ = next_stroke_pairs(teacher.transformer, batch, n)
        _, path = teacher.denoise_stroke(copy.deepcopy(teacher.scheduler), context, DEFAULT_NUM_INFERENCE_STEPS, 1.0,
                                         generator, 1.0, return_trajectory=True,
                                         memory=sketch_memory(teacher.transformer, batch, n, device))
        contexts.append(context.cpu())
        paths.append(path.cpu())
    return torch.cat(contexts), torch.cat(paths, dim=1)


def stroke_rows(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sketch ``(M,)`` and position ``(M,)`` of every stroke of sketches with ``lengths (N,)``, sketch by sketch:
    the row order of ``next_stroke_pairs`` and ``sketch_memory``."""
    width = int(lengths.max()) if len(lengths) else 0
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).nonzero(as_tuple=True)


def sketch_memory(model: StrokeDiffusionModel, strokes: torch.Tensor, lengths: torch.Tensor, device):
    """The model's ``memory`` (on ``device``) for denoising every stroke of ``strokes (N, S, P, 2)`` with ``lengths
    (N,)``, rows in ``stroke_rows`` order, each seeing the strokes before it (each sketch's point tokens made once);
    ``None`` for a model without history attention."""
    if not model.config.history_attention_layers:
        return None
    sketch, position = (index.to(device) for index in stroke_rows(lengths))
    width = max(int(lengths.max()), 1)
    return model.history_memory(strokes[:, :width].to(device), sketch, position, position, num_slots=width)


def sketch_batch(lengths: torch.Tensor, num_sketches: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_sketches`` random sketches of ``lengths (N,)`` and all their strokes: ``(sketches (K,), rows (M,))``.
    ``rows`` index the strokes of all N sketches (``stroke_rows`` order) and come in the order of the K sketches'
    strokes, the rows of their ``sketch_memory``."""
    chosen = torch.randint(0, len(lengths), (num_sketches,), generator=generator)
    sketch, position = stroke_rows(lengths[chosen])
    return chosen, (lengths.cumsum(0) - lengths)[chosen][sketch] + position


def next_stroke_pairs(model: StrokeDiffusionModel, strokes: torch.Tensor,
                      lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every stroke of ``strokes (N, S, P, 2)`` with ``lengths (N,)`` and the context of the strokes before it:
    ``(contexts (M, D), strokes (M, P, 2))``, M = ``lengths.sum()``, in ``stroke_rows`` order."""
    sketch, position = stroke_rows(lengths)
    return model.encode_history(strokes)[sketch, position], strokes[sketch, position]


@torch.no_grad()
def real_stroke_pairs(model: StrokeDiffusionModel, strokes: torch.Tensor, lengths: torch.Tensor,
                      batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``next_stroke_pairs`` of the training drawings ``strokes (N, S, P, 2)``, in batches, on the CPU."""
    pairs = [next_stroke_pairs(model, strokes[i : i + batch_size].to(model.device),
                               lengths[i : i + batch_size].to(model.device))
             for i in range(0, len(strokes), batch_size)]
    return torch.cat([c for c, _ in pairs]).float().cpu(), torch.cat([s for _, s in pairs]).cpu()


def teacher_digest(model_dir: Path) -> str:
    """sha256 of the folder's ``transformer`` weights."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME

    return file_digest(model_dir / "transformer" / SAFETENSORS_WEIGHTS_NAME)


def load_or_make_trajectories(teacher, model_dir: Path, work_dir: Path, args) -> dict:
    """The cached trajectories of ``work_dir`` if they were made for this teacher and these options, else new ones
    (written atomically)."""
    from safetensors.torch import load_file, save_file

    key = {"teacher_weights_sha256": teacher_digest(model_dir), "teacher_sketches": str(args.teacher_sketches),
           "seed": str(args.seed), "steps": str(DEFAULT_NUM_INFERENCE_STEPS), "format": "2"}
    path = work_dir / TRAJECTORIES
    if path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(path, "pt") as f:
                if f.metadata() == key:
                    return load_file(path)
        except Exception as exc:  # a damaged cache is rebuilt, not trusted
            logger.warning("%s is unreadable (%s): drawing the trajectories again", path, exc)
    real = training_sketches(model_dir, args.cache_dir)  # first: a missing data file fails before the long drawing
    generator = torch.Generator().manual_seed(args.seed)
    own = teacher_sketches(teacher, args.teacher_sketches, generator)
    width = max(own[0].shape[1], real[0].shape[1])
    strokes = torch.cat([F.pad(s, (0, 0, 0, 0, 0, width - s.shape[1])) for s in (own[0], real[0])])
    lengths = torch.cat([own[1], real[1]])
    contexts, paths = teacher_trajectories(teacher, strokes, lengths, generator)
    data = {"contexts": contexts.contiguous(), "trajectories": paths.contiguous(), "strokes": strokes.contiguous(),
            "lengths": lengths.contiguous()}
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(data, tmp, metadata=key)
    os.replace(tmp, path)
    return data


def teacher_timesteps(teacher: StrokeDiffusionPipeline) -> torch.Tensor:
    """The ``(DEFAULT_NUM_INFERENCE_STEPS,)`` timesteps of a teacher path's points (``teacher_trajectories``: point k
    is the stroke at the k-th timestep; the path's last point, the drawn stroke, has none)."""
    scheduler = copy.deepcopy(teacher.scheduler)
    scheduler.set_timesteps(DEFAULT_NUM_INFERENCE_STEPS)
    return scheduler.timesteps.long()


def one_step_stroke(student, scheduler, sample: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                    memory=None) -> torch.Tensor:
    """The stroke ``(N, P, 2)`` that ``scheduler`` (an ``LCMScheduler``) denoises in one step from ``sample (N, P, 2)``
    at ``timesteps (N,)`` with the student's output given ``context (N, D)`` and ``memory`` (``sketch_memory``);
    float32."""
    output = student(sample, timesteps, context, memory).float()
    alphas_cumprod = scheduler.alphas_cumprod.to(sample.device)[timesteps]
    alpha, sigma = alphas_cumprod.sqrt()[:, None, None], (1 - alphas_cumprod).sqrt()[:, None, None]
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        x0 = alpha * sample - sigma * output
    elif kind == "epsilon":
        x0 = (sample - sigma * output) / alpha
    else:
        x0 = output
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(timesteps)
    return c_out[:, None, None] * x0 + c_skip[:, None, None] * sample


def consistency_loss(student, scheduler, sample: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                     target: torch.Tensor, memory=None) -> torch.Tensor:
    """Mean squared error between ``target (N, P, 2)`` and the student's ``one_step_stroke`` from ``sample``."""
    return F.mse_loss(one_step_stroke(student, scheduler, sample, timesteps, context, memory), target)


class StrokeDiscriminator(nn.Module):
    """Logit that a stroke ``(N, P, 2)`` is a real one given its history's ``context (N, D)``: four 1-D convolutions
    along the points (the last two halve them), a linear layer, and a projection onto the context (Miyato and
    Koyama, 2018); spectral norm on every layer. It computes in float32 under any autocast."""

    def __init__(self, points_per_stroke: int, context_width: int, channels: int = 64, hidden: int = 256):
        super().__init__()
        if points_per_stroke % 4:
            raise ValueError(f"the discriminator halves the points twice: {points_per_stroke} is not a multiple of 4")
        c = channels
        self.convs = nn.ModuleList([spectral_norm(nn.Conv1d(2, c, 5, padding=2)),
                                    spectral_norm(nn.Conv1d(c, c, 5, padding=2)),
                                    spectral_norm(nn.Conv1d(c, 2 * c, 4, stride=2, padding=1)),
                                    spectral_norm(nn.Conv1d(2 * c, 2 * c, 4, stride=2, padding=1))])
        self.fc = spectral_norm(nn.Linear(2 * c * points_per_stroke // 4, hidden))
        self.out = spectral_norm(nn.Linear(hidden, 1))
        self.embed = spectral_norm(nn.Linear(context_width, hidden))

    def forward(self, stroke: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        with torch.autocast(stroke.device.type, enabled=False):
            h = stroke.float().transpose(1, 2)
            for conv in self.convs:
                h = F.leaky_relu(conv(h), 0.2)
            h = F.leaky_relu(self.fc(h.flatten(1)), 0.2)
            return self.out(h).squeeze(-1) + (h * self.embed(context.float())).sum(-1)


def adaptive_weight(distillation: torch.Tensor, adversarial: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
    """``|grad distillation| / |grad adversarial|`` of two 0-d losses at the weights ``layer`` (VQGAN's balance of two
    losses), at most 1e4; the graph is kept for the backward pass."""
    grads = [torch.autograd.grad(loss, layer, retain_graph=True)[0].norm() for loss in (distillation, adversarial)]
    return (grads[0] / (grads[1] + 1e-8)).clamp(max=1e4).detach()


def clip_gradients(accelerator, optimizer, parameters: list, max_norm: float) -> torch.Tensor:
    """Clip ``parameters``' gradients to ``max_norm`` after unscaling (fp16) those of ``optimizer`` alone: the
    student's two optimizers share its weights, which ``Accelerator.clip_grad_norm_`` would unscale twice."""
    accelerator.unscale_gradients(optimizer=optimizer)
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def lcm_scheduler(teacher_config):
    """The ``LCMScheduler`` of a teacher scheduler's config: the same noise schedule and prediction type, on the grid of
    the teacher's ``DEFAULT_NUM_INFERENCE_STEPS`` timesteps; options only the teacher's class takes are left out (a
    ``DPMSolverMultistepScheduler`` made ``from_config`` of it is the teacher's sampler again, with its defaults)."""
    import inspect

    from diffusers import LCMScheduler

    accepted = inspect.signature(LCMScheduler.__init__).parameters
    return LCMScheduler.from_config({k: v for k, v in teacher_config.items() if k in accepted},
                                    original_inference_steps=DEFAULT_NUM_INFERENCE_STEPS)


def make_student(teacher: StrokeDiffusionModel) -> StrokeDiffusionModel:
    """A copy of ``teacher`` whose denoiser trains and whose encoder, stop head and null context are frozen; its
    config says it has no trained null context (``context_dropout`` 0), so guidance is refused with it."""
    student = StrokeDiffusionModel.from_config({**teacher.config, "context_dropout": 0.0})
    student.load_state_dict(teacher.state_dict())
    for name, parameter in student.named_parameters():
        parameter.requires_grad_(name.split(".")[0] not in FROZEN)
    return student


def distill(args) -> Path:
    """Run a distillation (``distill.py``'s options in ``args``); return the pipeline folder written."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    model_dir, work_dir, output_dir = Path(args.model), Path(args.work_dir), Path(args.output_dir)
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(args.mixed_precision))
    if accelerator.num_processes > 1:
        raise ValueError("distillation runs in one process (python distill.py ...), not under a multi-process launch")
    torch.manual_seed(args.seed)
    teacher, teacher_sha256 = load_teacher(model_dir).to(accelerator.device), teacher_digest(model_dir)
    run = run_record(vars(args), RESUMABLE_OPTIONS, trainer="distill.py", teacher_weights_sha256=teacher_sha256,
                     max_steps=args.max_steps)
    checkpoint_dir, log_file = work_dir / "checkpoints", work_dir / "distill_log.jsonl"
    resume, step, elapsed = resume_point(args.resume_from_checkpoint, checkpoint_dir, run, "another --work-dir",
                                         may_change=() if args.adversarial_steps else ("max_steps",),
                                         unrecorded={"adversarial_steps": 0})
    points = teacher.transformer.config.points_per_stroke
    if args.adversarial_steps and points % 4:  # checked before the teacher draws for minutes
        raise ValueError(f"the adversarial phase's discriminator needs points per stroke in multiples of 4, and the "
                         f"teacher has {points}: pass --adversarial-steps 0")
    scheduler = lcm_scheduler(teacher.scheduler.config)
    timesteps = teacher_timesteps(teacher)
    scheduler.set_timesteps(DEFAULT_NUM_INFERENCE_STEPS)
    if scheduler.timesteps.tolist() != timesteps.tolist():  # checked before the teacher draws for minutes
        raise ValueError(f"the teacher samples at timesteps {timesteps.tolist()}, not on LCMScheduler's grid "
                         f"{scheduler.timesteps.tolist()}: distillation needs 'trailing' timestep spacing")
    data = load_or_make_trajectories(teacher, model_dir, work_dir, args)
    contexts, paths = data["contexts"], data["trajectories"]
    targets = paths[-1].clamp(-1.0, 1.0)

    student = make_student(teacher.transformer)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, betas=(0.9, 0.99), weight_decay=0.0, foreach=True)

    def schedule(step):
        return min(1.0, (step + 1) / args.lr_warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(step, args.max_steps)
                                                                                    / args.max_steps))

    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    objects, total = [student, optimizer, lr_scheduler], args.max_steps + args.adversarial_steps
    if args.adversarial_steps:  # the adversarial phase: a discriminator, and a fresh optimizer for the student
        real_histories, real_lengths = training_sketches(model_dir, args.cache_dir)
        real_contexts, real_strokes = real_stroke_pairs(teacher.transformer, real_histories, real_lengths)
        with torch.random.fork_rng(devices=[]):  # the same initialisation whatever drew from the global generator
            torch.manual_seed(args.seed)
            discriminator = StrokeDiscriminator(targets.shape[1], contexts.shape[1])
        student_steps = args.adversarial_steps - args.discriminator_warmup_steps
        adversarial_optimizer = torch.optim.AdamW(trainable, lr=args.adversarial_learning_rate, betas=(0.9, 0.99),
                                                  weight_decay=0.0, foreach=True)
        objects += [discriminator, torch.optim.AdamW(discriminator.parameters(), lr=args.discriminator_learning_rate,
                                                     betas=(0.0, 0.99), weight_decay=0.0),
                    adversarial_optimizer, torch.optim.lr_scheduler.LambdaLR(
                        adversarial_optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, student_steps)
                                                                             / student_steps)))]
    student, optimizer, lr_scheduler, *adversarial_parts = accelerator.prepare(*objects)
    if resume is not None:
        accelerator.load_state(str(resume))
    trim_jsonl(log_file, step)  # lines past the checkpoint are logged again
    unwrapped = accelerator.unwrap_model(student)
    last_layer = (unwrapped.conv_out if unwrapped.conv_out is not None else unwrapped.head_out).weight

    started, window, device = time.time() - elapsed, [], accelerator.device
    # each step takes all strokes of random sketches, --batch-size of them on average
    num_sketches = max(1, round(args.batch_size * len(data["lengths"]) / len(contexts)))
    if args.adversarial_steps:
        num_real_sketches = max(1, round(args.batch_size / 2 * len(real_lengths) / len(real_contexts)))
    student.train()
    for step in tqdm(range(step, total), initial=step, total=total, desc="distillation"):
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([args.seed, step]).generate_state(1)[0]))
        sketches, rows = sketch_batch(data["lengths"], num_sketches, generator)
        point = torch.randint(0, len(timesteps), (len(rows),), generator=generator)
        point[torch.rand(len(rows), generator=generator) < args.first_step_fraction] = 0
        batch = [tensor.to(device) for tensor in (paths[point, rows], timesteps[point], contexts[rows], targets[rows])]
        batch.append(sketch_memory(unwrapped, data["strokes"][sketches], data["lengths"][sketches], device))
        if step < args.max_steps:
            loss = consistency_loss(student, scheduler, *batch)
            stop_if_not_finite(loss, "distillation loss", step + 1, checkpoint_dir)
            accelerator.backward(loss)
            clip_gradients(accelerator, optimizer, trainable, args.max_grad_norm)
            record = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}  # the learning rate of this step
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            real_sketches, real_rows = sketch_batch(real_lengths, num_real_sketches, generator)
            noise = torch.randn(len(real_rows), *targets.shape[1:], generator=generator)
            real_memory = sketch_memory(unwrapped, real_histories[real_sketches], real_lengths[real_sketches], device)
            record = adversarial_step(args, student, *adversarial_parts, scheduler, batch, noise.to(device),
                                      real_contexts[real_rows].to(device), real_strokes[real_rows].to(device),
                                      real_memory, timesteps[0],
                                      step >= args.max_steps + args.discriminator_warmup_steps, trainable, last_layer,
                                      accelerator)
            for name in ("loss", "discriminator_loss", "adversarial_loss", "adversarial_weight"):  # before any save
                if name in record:
                    stop_if_not_finite(record[name], name.replace("_", " "), step + 1, checkpoint_dir)
        window.append(record)
        if (step + 1) % args.log_interval == 0 or step + 1 == total:
            names = dict.fromkeys(name for record in window for name in record)  # the adversarial phase logs more
            append_jsonl(log_file, {"step": step + 1, **{name: float(np.mean([r[name] for r in window if name in r]))
                                                         for name in names},
                                    "seconds": round(time.time() - started, 1)})
            window = []
        if (step + 1) % args.checkpointing_steps == 0 and step + 1 < total:
            save_checkpoint(accelerator, checkpoint_dir, step + 1, args.checkpoints_total_limit, time.time() - started,
                            run)

    student = accelerator.unwrap_model(student).eval()
    precision = "bf16" if accelerator.mixed_precision == "bf16" else "no"  # the student samples as it trained
    distilled = StrokeDiffusionPipeline(teacher.transformer, scheduler, distilled_transformer=student,
                                        default_guidance_scale=teacher.config.default_guidance_scale,
                                        simplify_epsilon=teacher.config.simplify_epsilon,
                                        distilled_mixed_precision=precision)
    export(distilled, model_dir, output_dir)
    with atomic_path(output_dir / "logs" / "distill_log.jsonl") as tmp:
        shutil.copyfile(log_file, tmp)
    write_json_atomic(output_dir / "distillation_config.json", {
        **vars(args), "mixed_precision": accelerator.mixed_precision, "trajectory_points": int(len(contexts)),
        "real_strokes": int(len(real_strokes)) if args.adversarial_steps else 0,
        "teacher_steps": DEFAULT_NUM_INFERENCE_STEPS, "teacher_weights_sha256": teacher_sha256,
        "minutes": round((time.time() - started) / 60, 1), "libraries": library_versions(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return output_dir


def adversarial_step(args, student, discriminator, discriminator_optimizer, student_optimizer, student_lr_scheduler,
                     scheduler, batch: list, noise: torch.Tensor, real_contexts: torch.Tensor,
                     real_strokes: torch.Tensor, real_memory, first_timestep: torch.Tensor, train_student: bool,
                     trainable: list, last_layer: torch.Tensor, accelerator) -> dict:
    """One step of the adversarial phase. The discriminator learns (hinge loss) real strokes ``real_strokes (B, P, 2)``
    from the student's one-step strokes from ``noise (B, P, 2)``, both given ``real_contexts (B, D)`` (the student
    also the strokes before them, ``real_memory``); then, if ``train_student``, the student learns the distillation
    loss on ``batch`` plus ``args.adversarial_weight`` times the balanced adversarial loss. Returns the step's losses
    and the student's learning rate in it."""
    with torch.set_grad_enabled(train_student):
        distillation_loss = consistency_loss(student, scheduler, *batch)
        fake = one_step_stroke(student, scheduler, noise, first_timestep.expand(len(noise)).to(noise.device),
                               real_contexts, real_memory)
    discriminator_loss = (F.relu(1 - discriminator(real_strokes, real_contexts)).mean()
                          + F.relu(1 + discriminator(fake.detach(), real_contexts)).mean())
    accelerator.backward(discriminator_loss)
    discriminator_optimizer.step()
    discriminator_optimizer.zero_grad(set_to_none=True)
    record = {"loss": distillation_loss.item(), "discriminator_loss": discriminator_loss.item(), "lr": 0.0}
    if train_student:
        adversarial_loss = -discriminator(fake, real_contexts).mean()
        weight = args.adversarial_weight * adaptive_weight(distillation_loss, adversarial_loss, last_layer)
        accelerator.backward(distillation_loss + weight * adversarial_loss)
        discriminator_optimizer.zero_grad(set_to_none=True)  # the student's loss reached the discriminator too
        clip_gradients(accelerator, student_optimizer, trainable, args.max_grad_norm)
        record.update(adversarial_loss=adversarial_loss.item(), adversarial_weight=float(weight),
                      lr=student_lr_scheduler.get_last_lr()[0])
        student_optimizer.step()
        student_lr_scheduler.step()
        student_optimizer.zero_grad(set_to_none=True)
    return record


def export(distilled: StrokeDiffusionPipeline, model_dir: Path, output_dir: Path) -> list[str]:
    """Save ``distilled`` into ``output_dir``, a copy of ``model_dir`` (made first, checkpoints left out, when it is
    another folder), replacing the pipeline's files one by one, each write atomic; return the files written."""
    if output_dir.resolve() != model_dir.resolve():
        shutil.copytree(model_dir, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints"))
    (output_dir / "logs").mkdir(parents=True, exist_ok=True)
    return save_pretrained_atomic(distilled, output_dir)
