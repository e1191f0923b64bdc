"""Training pieces under ``train.py`` (and ``train_sketch_rnn.py``): data, the loss, checkpoints, export.

``train.py`` holds the command line and the Accelerate loop; everything it calls that is not a loop step lives
here: the data flags and loading (``add_data_arguments``, ``load_training_data``), augmentation and sharded batch
order, the diffusion objective and validation loss, atomic verified checkpoints, and the model, schedulers and
pipeline a run builds and exports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel
from pipeline.pipeline_stroke_diffusion import StrokeDiffusionPipeline, computes_bf16_natively
from pipeline.rendering import image_grid, png_bytes, sketches_gif
from pipeline.representation import pack_sketches

from .data import load_split_sketches, resolve_split
from .download import is_official_blob, resolve_data_file
from .fileio import file_digest, git_blob_sha1, write_bytes_atomic, write_json_atomic
from .settings import default_cache_dir, scheduler_class

logger = logging.getLogger(__name__)

CHECKPOINT_MARKER = "checkpoint.json"
EMA_FOLDER = "ema"  # a checkpoint's EMA weights, as a save_pretrained folder (safetensors, not accelerate's pickle)
ROW_BUCKET = 256  # the denoiser's training rows are padded to a multiple of this (see DiffusionObjective.forward)


# ----------------------------------------------------------------------------- data


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
    g.add_argument("--cache-dir", default=str(default_cache_dir()),
                   help="cache of the Arrow datasets built from ndjson files (under datasets/)")


def load_training_sketches(args) -> tuple[list, dict]:
    """Resolve the data file and split; return the train sketches (lists of ``(n, 2)`` pixel arrays) and provenance."""
    data_file = resolve_data_file(args.category, args.data, args.data_dir, allow_download=not args.no_download)
    split, split_source = resolve_split(data_file, args.category, args.split)
    train = load_split_sketches(data_file, split, Path(args.cache_dir) / "datasets", word=args.category)["train"]
    if not train:
        raise ValueError(f"the split ({split_source}) selects no training drawings from {data_file}")
    blob = git_blob_sha1(data_file)
    split_json = json.dumps({name: sorted(split[name]) for name in ("train", "test")})
    provenance = {
        "data_file": {"path": str(data_file), "bytes": os.path.getsize(data_file),
                      "sha1": file_digest(data_file, "sha1"), "git_blob_sha1": blob,
                      "official": is_official_blob(blob, args.category)},
        "split": {"source": split_source, "train": len(split["train"]), "test": len(split["test"]),
                  "sha1": hashlib.sha1(split_json.encode()).hexdigest()},
    }
    return train, provenance


def load_training_data(args):
    """Sketches packed for the model and provenance: ``(strokes (N, S, P, 2), lengths (N,))`` to train on and the
    same for the ``--validation-size`` held-out drawings (empty tensors when none are held out)."""
    train, provenance = load_training_sketches(args)
    strokes, lengths, kept = pack_sketches(train, args.points_per_stroke, args.max_strokes)
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


def sketch_generators(entropy: list[int], positions) -> list[torch.Generator]:
    """One CPU generator per sketch, seeded by ``entropy`` (e.g. ``[seed, step, micro-batch]``) and the sketch's
    position in the global batch (all processes together): a sketch gets the same augmentation and noise however
    many processes train."""
    return [torch.Generator().manual_seed(int(np.random.SeedSequence([*entropy, int(p)]).generate_state(1)[0]))
            for p in positions]


def augment(strokes: torch.Tensor, lengths: torch.Tensor, strength: float, generators: list) -> torch.Tensor:
    """Randomly rotate (up to 10 degrees x strength) and stretch each axis (up to 15% x strength) every sketch of
    ``strokes (B, S, P, 2)`` in [-1, 1] with ``lengths (B,)``, then fit it to the canvas again as the official files
    are (longer side spanning [-1, 1], touching the top and left edges). Padding strokes stay zero."""
    if strength <= 0:
        return strokes
    b, s = strokes.shape[:2]
    u = torch.stack([torch.rand(3, generator=g) for g in generators]) * 2 - 1
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


def batch_indices(step: int, micro: int, args, num_items: int, process: int, num_processes: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The sketches of one process's micro-batch: ``(indices into the data, positions in the global batch)``.

    The global batch of ``train_batch_size * num_processes`` sketches follows a fresh seeded permutation every
    epoch; process ``p`` takes positions ``p, p + num_processes, ...``."""
    per_step = args.train_batch_size * num_processes
    position = (step * args.gradient_accumulation_steps + micro) * per_step
    epoch, offset = divmod(position, num_items)
    order = np.random.default_rng([args.seed, epoch]).permutation(num_items)
    order = np.concatenate([order, np.random.default_rng([args.seed, epoch + 1]).permutation(num_items)])
    positions = np.arange(process, per_step, num_processes)
    return order[offset : offset + per_step][positions], positions


# ----------------------------------------------------------------------------- loss


class DiffusionObjective(torch.nn.Module):
    """Wraps the model so that one ``forward`` computes the training loss (what DDP needs to sync gradients)."""

    def __init__(self, model: StrokeDiffusionModel, noise_scheduler, noise_draws: int, stop_loss_weight: float):
        super().__init__()
        self.model, self.noise_scheduler = model, noise_scheduler
        self.noise_draws, self.stop_loss_weight = noise_draws, stop_loss_weight

    def counts(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(2,)`` float: the noised strokes and the stop decisions that the losses of sketches with ``lengths (B,)``
        average over."""
        return torch.stack([lengths.sum() * self.noise_draws, (lengths + 1).sum()]).float()

    def forward(self, strokes: torch.Tensor, lengths: torch.Tensor, generators: list, normalizers=None):
        """Teacher-forced loss of ``strokes (B, S, P, 2)`` in [-1, 1] with ``lengths (B,)``.

        One encoder pass gives the context of every stroke; every real stroke is noised ``noise_draws`` times at
        uniform timesteps, and in training mode a ``context_dropout`` fraction of them sees the model's null context
        instead of its history. Each sketch's noise, timesteps and dropout come from its own CPU generator
        (``generators``, one per sketch). The losses are means over this batch's noised strokes and stop
        decisions, or their sums divided by ``normalizers`` (``counts`` of the global batch divided by the number
        of processes: the average over processes, which DDP takes, is then the global mean).
        Returns ``(total, denoising_loss, stop_loss)``.
        """
        device, (s, p) = strokes.device, strokes.shape[1:3]
        context = self.model.encode_history(strokes)  # (B, S + 1, D)
        positions = torch.arange(s + 1, device=device)
        valid = positions[None, :s] < lengths[:, None]  # strokes that exist
        draws, num_timesteps = self.noise_draws, self.noise_scheduler.config.num_train_timesteps

        x0 = strokes[valid].repeat(draws, 1, 1)  # (N, P, 2): draw-major, then sketch, then stroke
        cond = context[:, :s][valid].repeat(draws, 1)
        per_sketch = [(torch.randn(draws, n, p, 2, generator=g), torch.randint(0, num_timesteps, (draws, n), generator=g),
                       torch.rand(draws, n, generator=g)) for g, n in zip(generators, lengths.tolist())]
        noise, t, u = (torch.cat(parts, dim=1).flatten(0, 1).to(device) for parts in zip(*per_sketch))
        dropped = None
        if self.training and self.model.config.context_dropout > 0:
            dropped = (u < self.model.config.context_dropout)[:, None]
            cond = torch.where(dropped, self.model.null_context.to(cond.dtype), cond)
        memory = None
        if self.model.config.history_attention_layers:
            sketch, stroke = (index.repeat(draws) for index in valid.nonzero(as_tuple=True))
            slot = stroke + s * torch.arange(draws, device=device).repeat_interleave(len(sketch) // draws)
            sees = stroke if dropped is None else torch.where(dropped[:, 0], 0, stroke)  # dropped: no history
            memory = self.model.history_memory(strokes, sketch, slot, sees, num_slots=draws * s)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "sample":
            target = x0
        else:
            target = self.noise_scheduler.get_velocity(x0, noise, t)
        # pad the rows to a multiple of ROW_BUCKET: batches then repeat a few shapes, whose bfloat16 kernels the CPU
        # backend (oneDNN) builds once and reuses; padded rows are left out of the loss
        n, pad = len(noisy), -len(noisy) % ROW_BUCKET
        if pad:
            noisy, cond = F.pad(noisy, (0, 0, 0, 0, 0, pad)), F.pad(cond, (0, 0, 0, pad))
            t = F.pad(t, (0, pad))
        prediction = self.model(noisy, t, cond, memory)[:n]
        squared_error = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2))

        stop_mask = positions[None, :] <= lengths[:, None]  # decisions taken after 0..n strokes
        stop_target = (positions[None, :] == lengths[:, None]).float()
        stop_logits = self.model.stop_logits(context).float()
        stop_bce = F.binary_cross_entropy_with_logits(stop_logits[stop_mask], stop_target[stop_mask], reduction="none")
        strokes_count, decisions_count = self.counts(lengths) if normalizers is None else normalizers
        denoise_loss, stop_loss = squared_error.sum() / strokes_count, stop_bce.sum() / decisions_count
        return denoise_loss + self.stop_loss_weight * stop_loss, denoise_loss, stop_loss


@torch.no_grad()
def validation_loss(model: StrokeDiffusionModel, noise_scheduler, strokes: torch.Tensor, lengths: torch.Tensor,
                    args) -> dict:
    """Denoising and stop losses of held-out sketches: the same noise every time, no context dropout."""
    objective = DiffusionObjective(model, noise_scheduler, args.noise_draws, args.stop_loss_weight).eval()
    sums, count = np.zeros(2), 0
    for start in range(0, len(strokes), args.train_batch_size):
        batch = slice(start, start + args.train_batch_size)
        generators = sketch_generators([args.seed, 1], range(start, start + len(strokes[batch])))
        _, denoise, stop = objective(strokes[batch], lengths[batch], generators)
        n = len(strokes[batch])
        sums, count = sums + n * np.array([denoise.item(), stop.item()]), count + n
    return {"val_denoise_loss": sums[0] / count, "val_stop_loss": sums[1] / count}


# ----------------------------------------------------------------------------- checkpoints


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints (with their marker file), oldest first; none in a folder that does not exist."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and (p / CHECKPOINT_MARKER).is_file()
             and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def save_checkpoint(accelerator, folder: Path, step: int, limit: int, elapsed_seconds: float = 0.0,
                    run: dict | None = None) -> Path:
    """``accelerator.save_state`` into a temporary folder, record file hashes (and ``run``, the options that define
    the run: ``resume_point`` checks them), then rename into place.

    An interrupted or failed write (disk full, kill) leaves the previous checkpoints untouched; old
    checkpoints beyond ``limit`` are removed only after the new one is complete. Call it on every process.
    """
    final = folder / f"checkpoint-{step}"
    tmp = folder / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()  # every process writes its own files (random states) into tmp
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()  # all of them written before the folder is hashed and renamed
        if accelerator.is_main_process:
            files = {str(f.relative_to(tmp)): file_digest(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
            write_json_atomic(tmp / CHECKPOINT_MARKER, {"step": step, "elapsed_seconds": round(elapsed_seconds, 2),
                                                        "files": files, "run": run})
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


def stop_if_not_finite(value, what: str, step: int, checkpoint_dir: Path) -> None:
    """Raise ``FloatingPointError`` if ``value`` (a number or a 0-d tensor: a loss, a gradient norm) at ``step`` is NaN
    or infinite: the trainers stop then, with nothing exported and their checkpoints kept."""
    value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(value):
        raise FloatingPointError(f"the {what} is {value} at step {step}: nothing is exported, and the checkpoints in "
                                 f"{checkpoint_dir} are kept (lower --learning-rate?)")


def run_record(options: dict, changeable: set, **extra) -> dict:
    """What defines a run, as JSON values: ``options`` (a parsed command line's ``vars``) less the ``changeable``
    ones, plus ``extra`` (e.g. the data's sha1 and the ``trainer`` script). Checkpoints record it; ``resume_point``
    compares it."""
    return json.loads(json.dumps(dict({k: v for k, v in options.items() if k not in changeable}, **extra)))


def _recorded_run(checkpoint: Path) -> dict:
    """The ``run`` a checkpoint recorded (``save_checkpoint``); empty for one that recorded none."""
    return json.loads((checkpoint / CHECKPOINT_MARKER).read_text()).get("run") or {}


def _other_options(saved: dict, run: dict) -> dict[str, str]:
    """The options of ``run`` that a checkpoint's recorded run ``saved`` had otherwise, each as "key=old there, new
    here" (none for options it did not record: those came later)."""
    return {key: f"{key}={saved[key]!r} there, {value!r} here" for key, value in run.items()
            if key in saved and saved[key] != value}


def resume_point(arg: str | None, folder: Path, run: dict, elsewhere: str, may_change: tuple = ("max_steps",),
                 unrecorded: dict | None = None) -> tuple[Path | None, int, float]:
    """Where a run starts: ``(checkpoint, step, training seconds)``, or ``(None, 0, 0.0)`` to start afresh.

    ``arg`` is ``--resume-from-checkpoint``: 'latest' (in ``folder``), a checkpoint folder, or None / 'none' for a
    fresh start. Refused, so that two runs never mix in one folder: a fresh start while ``folder`` holds
    checkpoints (the new run's would replace and prune them), and a checkpoint (or, resuming one from elsewhere,
    the folder's own) whose run had other ``run`` options (its optimizer and schedule state would silently win over
    the new flags); options in ``may_change`` (the run's length, which a resume may extend) are only logged.
    ``unrecorded`` holds the values of options that older checkpoints did not record (they ran without the option).
    ``elsewhere`` says where else to start afresh, e.g. "another --output-dir".
    """
    found = list_checkpoints(folder)
    afresh = f"start afresh in {elsewhere} (or delete {folder})"
    if arg in (None, "none"):
        if found:
            raise ValueError(f"{folder} holds checkpoints of an earlier run (the latest: {found[-1].name}): resume it "
                             f"with --resume-from-checkpoint latest, or {afresh}")
        return None, 0, 0.0
    path = resolve_resume(arg, folder)
    if path is None:
        return None, 0, 0.0
    step, seconds = verify_checkpoint(path)
    recorded = {checkpoint: {**(unrecorded or {}), **_recorded_run(checkpoint)}
                for checkpoint in [path] + found[-1:]}  # the resumed and the latest
    for checkpoint, saved in recorded.items():
        differ = _other_options(saved, run)
        if "trainer" in differ:
            raise ValueError(f"checkpoint {checkpoint} was written by {saved['trainer']}, not {run['trainer']}: "
                             f"{afresh}")
        refused = [text for key, text in differ.items() if key not in may_change]
        if refused:
            raise ValueError(f"checkpoint {checkpoint} is of a run with other options ({'; '.join(refused)}): resume "
                             f"with that run's options, or {afresh}")
    differ = _other_options(recorded[path], run)
    for key in may_change:
        if key in differ:
            logger.warning("resuming %s with %s: the learning-rate schedule follows the new length from here on",
                           path, differ[key])
    return path, step, seconds


# ----------------------------------------------------------------------------- the model and pipeline a run builds


def build_schedulers(args):
    from diffusers import DDPMScheduler

    train_scheduler = DDPMScheduler(num_train_timesteps=args.num_train_timesteps, beta_schedule=args.beta_schedule,
                                    prediction_type=args.prediction_type, clip_sample=True)
    sampler_cls = scheduler_class(args.sampling_scheduler)
    # Sampling should start from pure noise: t = 999, where the cosine schedule's alpha_bar is ~0. v and sample
    # prediction are well defined there ("trailing" spacing starts at 999). Epsilon prediction is not (x0 = (x - eps)
    # / sqrt(alpha_bar) blows up and DPM-Solver diverges), so it gets "leading" spacing (first step t = 900 of 10), which
    # starts from noise the model reads as a slightly noised stroke: strokes come out shorter and more numerous.
    spacing = "leading" if args.prediction_type == "epsilon" else "trailing"
    return train_scheduler, sampler_cls.from_config(train_scheduler.config, timestep_spacing=spacing)


def build_model(args) -> StrokeDiffusionModel:
    """A freshly initialised ``StrokeDiffusionModel`` with the model options of ``args``."""
    return StrokeDiffusionModel(
        points_per_stroke=args.points_per_stroke, max_strokes=args.max_strokes,
        hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
        head_hidden_size=args.head_hidden_size, head_num_blocks=args.head_num_blocks,
        head_conv_blocks=args.head_conv_blocks, head_conv_channels=args.head_conv_channels, dropout=args.dropout,
        context_dropout=args.context_dropout, history_attention_layers=args.history_attention_layers)


def make_pipeline(model, sampling_scheduler, args) -> StrokeDiffusionPipeline:
    """The pipeline that ``model`` is saved and sampled in, with the sampling defaults of ``args``."""
    pipe = StrokeDiffusionPipeline(transformer=model, scheduler=sampling_scheduler,
                                   default_guidance_scale=args.guidance_scale, simplify_epsilon=args.simplify_epsilon)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_samples(pipe, out_dir: Path, step: int, num: int, seed: int) -> None:
    out = pipe(num_sketches=num, generator=torch.Generator().manual_seed(seed), image_size=128, line_width=2.0)
    write_bytes_atomic(out_dir / f"step-{step:06d}.png", png_bytes(image_grid(out.images)))
    write_bytes_atomic(out_dir / f"step-{step:06d}.gif", sketches_gif(out.strokes, size=128, line_width=2.0))


def resolve_mixed_precision(choice: str) -> str:
    """``--mixed-precision auto`` -> ``"bf16"`` where the device computes bfloat16 natively (a CUDA GPU with bf16,
    a CPU with AVX512-BF16 or AMX tiles), else ``"no"``; any other choice is returned unchanged. Emulated bf16 (on
    older CPUs) is slower than float32, hence the check."""
    if choice != "auto":
        return choice
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if computes_bf16_natively(device) else "no"


def hardware(accelerator) -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": str(accelerator.device),
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
