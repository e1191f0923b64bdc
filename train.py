"""Train one category's stroke-by-stroke sketch diffusion model with Accelerate.

    accelerate launch train.py --category cat --output-dir models/cat        # official data, downloaded if missing
    python train.py --category rabbit --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json

Writes a Hub-ready pipeline folder (EMA weights) to --output-dir, with ``training_config.json``,
``provenance.json``, checkpoints under ``checkpoints/``, samples under ``samples/`` and the loss logs
under ``logs/`` (``train_log.jsonl``; ``validation_log.jsonl`` with ``--validation-size``). Runs unchanged
on CPU, one GPU, several GPUs (``accelerate launch --multi_gpu --num_processes N``)
and several CPU processes (``torchrun --standalone --nproc_per_node N train.py ...``, over gloo); a global batch
gives the same updates whatever the process count. Interrupted runs resume with ``--resume-from-checkpoint latest``.
The forward pass runs under bfloat16 autocast where the device computes it natively (``--mixed-precision auto``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel
from sketch_diffusion.fileio import append_jsonl, trim_jsonl, write_json_atomic
from sketch_diffusion.provenance import library_versions, weights_sha256
from sketch_diffusion.release import save_pretrained_atomic
from sketch_diffusion.train_options import parse_args, run_options
from sketch_diffusion.training import (EMA_FOLDER, DiffusionObjective, augment, batch_indices, build_model,
                                       build_schedulers, hardware, load_training_data, make_pipeline, render_samples,
                                       resolve_mixed_precision, resume_point, save_checkpoint, sketch_generators,
                                       stop_if_not_finite, validation_loss)

logger = logging.getLogger("train")


def main(argv=None) -> None:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    args = parse_args(argv, description=__doc__.split("\n")[0])
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision)  # saved resolved in training_config.json
    output_dir = Path(args.output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    log_with = args.logger
    if log_with == "auto":
        try:
            import tensorboard  # noqa: F401  (only probing whether it is installed)
            log_with = "tensorboard"
        except ImportError:
            log_with = "none"
    # Several processes without a GPU (torchrun --nproc_per_node N train.py): Accelerate's CPU data parallelism (gloo)
    several_cpu_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=several_cpu_processes, gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if log_with == "none" else log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    distilled = [output_dir / name for name in ("distilled_transformer", "distillation_config.json")
                 if (output_dir / name).exists()]
    if distilled:
        logger.warning("%s holds a distilled sampler of its earlier weights (%s): the export replaces those weights "
                       "and removes it; run distill.py on the new model", output_dir,
                       ", ".join(path.name for path in distilled))
    cores = os.cpu_count() or 1
    if accelerator.device.type == "cpu" and torch.get_num_threads() == 1 and cores > 1:
        logger.warning("training on the CPU with 1 of %d cores (OMP_NUM_THREADS=%s; `accelerate launch` sets 1 unless "
                       "given --num_cpu_threads_per_process): `python train.py ...` or `accelerate launch "
                       "--num_cpu_threads_per_process %d train.py ...` uses them all (twice as fast on 2 cores)",
                       cores, os.environ.get("OMP_NUM_THREADS", "unset"), cores)
    torch.manual_seed(args.seed)

    with accelerator.main_process_first():  # the first process builds the Arrow cache, the others read it
        (strokes, lengths), (val_strokes, val_lengths), provenance = load_training_data(args)
    logger.info("training on %d sketches (%s), %d held out for validation", len(strokes),
                provenance["split"]["source"], len(val_strokes))
    steps_per_epoch = math.ceil(len(strokes) / (args.train_batch_size * accelerator.num_processes
                                                * args.gradient_accumulation_steps))
    max_steps = args.max_steps or args.num_epochs * steps_per_epoch
    run = dict(run_options(args, provenance, accelerator.num_processes), max_steps=max_steps)  # a resume must match
    resume, global_step, prior_seconds = resume_point(args.resume_from_checkpoint, checkpoint_dir, run,
                                                      "another --output-dir")
    if args.export_only and resume is None:
        raise ValueError(f"--export-only: no checkpoint to export in {checkpoint_dir}")

    model = build_model(args)
    noise_scheduler, sampling_scheduler = build_schedulers(args)
    ema = EMAModel(model.parameters(), decay=args.ema_max_decay, use_ema_warmup=True,
                   model_cls=StrokeDiffusionModel, model_config=model.config) if args.use_ema else None

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.weight_decay, foreach=True)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps,
                                 num_training_steps=max_steps)
    objective = DiffusionObjective(model, noise_scheduler, args.noise_draws, args.stop_loss_weight)
    objective, optimizer, lr_scheduler = accelerator.prepare(objective, optimizer, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)

        def save_ema(models, weights, folder: str) -> None:
            if accelerator.is_main_process:
                ema.save_pretrained(os.path.join(folder, EMA_FOLDER))

        def load_ema(models, folder: str) -> None:
            path = Path(folder) / EMA_FOLDER
            if not path.is_dir():
                raise ValueError(f"checkpoint {folder} has no {EMA_FOLDER}/ folder of EMA weights (saved without EMA); "
                                 "resume it with --no-use-ema or start afresh")
            saved = json.loads((path / "config.json").read_text())  # the model's config plus the EMA's decay and step
            other = [f"{k}={saved[k]!r} there, {v!r} here" for k, v in model.config.items()
                     if not k.startswith("_") and k in saved and saved[k] != v]
            if other:
                raise ValueError(f"checkpoint {folder} is of another model ({'; '.join(other)}): resume with the "
                                 "run's options, e.g. --config with its training_config.json, or the flags it used")
            weights = load_file(path / SAFETENSORS_WEIGHTS_NAME)
            state = {key: saved[key] for key in ema.state_dict() if key != "shadow_params"}
            shadow = [weights[name].to(accelerator.device) for name, _ in model.named_parameters()]  # EMA build order
            ema.load_state_dict(dict(state, shadow_params=shadow))

        accelerator.register_save_state_pre_hook(save_ema)
        accelerator.register_load_state_pre_hook(load_ema)
    sketches_per_step = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps

    def unwrapped_model() -> StrokeDiffusionModel:
        return accelerator.unwrap_model(objective).model

    def export_model() -> StrokeDiffusionModel:
        """A float32 CPU copy of the weights to ship: the EMA weights when EMA is on. Its throwaway initialisation
        draws from a forked random state, so exporting (samples, validation) leaves the run's draws as they were and
        a resumed run stays bit-identical to an uninterrupted one."""
        with torch.random.fork_rng(devices=[]):
            copy = StrokeDiffusionModel.from_config(unwrapped_model().config)
        if ema is not None:
            ema.copy_to(copy.parameters())
        else:
            copy.load_state_dict(unwrapped_model().state_dict())
        return copy.float().eval()

    if resume is None:
        logger.info("no checkpoint to resume in %s: starting from scratch", checkpoint_dir)
    else:
        accelerator.load_state(str(resume))
        logger.info("resumed from %s at step %d", resume, global_step)

    def export(step: int, wall_seconds: float) -> None:
        stale = [name for name in ("metrics.json", "metrics.grid.png", "sample.gif", "README.md")
                 if (output_dir / name).is_file()]
        save_pretrained_atomic(make_pipeline(export_model(), sampling_scheduler, args), output_dir)
        for path in distilled:  # the student of the earlier weights: the new pipeline does not use it
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        write_json_atomic(output_dir / "training_config.json", vars(args))
        record = dict(provenance, category=args.category, steps=step, max_steps=max_steps,
                      sketches_seen=step * sketches_per_step,
                      wall_time_seconds=round(wall_seconds, 1), ema=args.use_ema, hardware=hardware(accelerator),
                      libraries=library_versions(),
                      parameters=sum(p.numel() for p in unwrapped_model().parameters()),
                      weights_sha256=weights_sha256(output_dir),
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json_atomic(output_dir / "provenance.json", record)
        logger.info("saved the pipeline to %s", output_dir)
        if stale:
            logger.warning("%s still holds %s of the weights it held before: run evaluate.py on the new model before "
                           "releasing it (sketch_diffusion.release refuses metrics of other weights)", output_dir,
                           ", ".join(stale))

    if args.export_only:
        if accelerator.is_main_process:
            export(global_step, prior_seconds)
        return

    if accelerator.is_main_process:
        accelerator.init_trackers("train", config={k: v for k, v in vars(args).items() if v is not None})
    log_file = output_dir / "logs" / "train_log.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:  # steps past the checkpoint (or every step, starting afresh) are logged again
        for log in (log_file, log_file.with_name("validation_log.jsonl")):
            trim_jsonl(log, global_step)

    start, start_step = time.time(), global_step
    saved_step = global_step
    progress = tqdm(total=max_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="steps")
    objective.train()
    while global_step < max_steps:
        if args.max_train_minutes is not None and prior_seconds + time.time() - start >= 60 * args.max_train_minutes:
            logger.info("time budget of %.1f minutes reached at step %d", args.max_train_minutes, global_step)
            break
        for micro in range(args.gradient_accumulation_steps):
            idx, positions = batch_indices(global_step, micro, args, len(strokes), accelerator.process_index,
                                           accelerator.num_processes)
            generators = sketch_generators([args.seed, 0, global_step, micro], positions)
            batch = augment(strokes[idx], lengths[idx], args.augment, generators).to(accelerator.device)
            batch_lengths = lengths[idx].to(accelerator.device)
            # the global batch's counts, per process: DDP's average of the processes' losses is then the global mean
            counts = accelerator.unwrap_model(objective).counts(batch_lengths)
            normalizers = accelerator.reduce(counts, reduction="sum") / accelerator.num_processes
            with accelerator.accumulate(objective):
                # prepare() wrapped the objective's forward in the run's autocast; the backward follows its dtypes
                loss, denoise_loss, stop_loss = objective(batch, batch_lengths, generators, normalizers)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    norm = accelerator.clip_grad_norm_(objective.parameters(), args.max_grad_norm)
                    stop_if_not_finite(norm, "gradient norm", global_step + 1, checkpoint_dir)  # before the step
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
        if ema is not None:
            ema.step(unwrapped_model().parameters())
        global_step += 1

        elapsed = prior_seconds + time.time() - start
        loss, denoise_loss, stop_loss = accelerator.reduce(torch.stack([loss, denoise_loss, stop_loss]).detach(),
                                                           reduction="mean")  # the global batch's means
        logs = {"loss": loss.item(), "denoise_loss": denoise_loss.item(), "stop_loss": stop_loss.item(),
                "lr": lr_scheduler.get_last_lr()[0], "step": global_step}
        stop_if_not_finite(logs["loss"], "training loss", global_step, checkpoint_dir)
        progress.update(1)
        sketches_per_s = (global_step - start_step) * sketches_per_step / max(time.time() - start, 1e-9)
        progress.set_postfix(loss=f"{logs['loss']:.4f}", sketches_per_s=f"{sketches_per_s:.0f}")
        accelerator.log(logs, step=global_step)
        if accelerator.is_main_process:
            append_jsonl(log_file, dict(logs, elapsed_seconds=round(elapsed, 2)))

        if global_step % args.checkpointing_steps == 0 or global_step == max_steps:
            save_checkpoint(accelerator, checkpoint_dir, global_step, args.checkpoints_total_limit, elapsed, run)
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
                        prior_seconds + time.time() - start, run)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export(global_step, prior_seconds + time.time() - start)
    accelerator.end_training()


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, FloatingPointError) as exc:
        logging.getLogger("train").error("%s", exc)
        sys.exit(1)
