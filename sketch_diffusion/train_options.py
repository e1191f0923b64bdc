"""``train.py``'s command line: the recipe's options and their defaults, in one place.

The defaults are the recipe of the shipped rabbit; ``--config`` takes a run's ``training_config.json`` as defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .settings import SAMPLING_SCHEDULERS, DefaultsHelpFormatter
from .training import add_data_arguments, list_checkpoints, run_record

RUN_SPECIFIC_OPTIONS = {"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "export_only", "config",
                        "debug_kill_at_step", "help"}
# options a resumed run may change: where things go, how long it runs (train.py records the resolved --max-steps
# and logs a change, which reshapes the learning-rate schedule), how often it saves and reports, the autocast, what only the exported pipeline reads, how the global batch
# is split over processes (run_options records the global batch) and the data's location (its content is checked:
# run_options records the file's and the split's sha1)
RESUMABLE_OPTIONS = RUN_SPECIFIC_OPTIONS | {
    "max_steps", "num_epochs", "max_train_minutes", "checkpointing_steps", "checkpoints_total_limit", "validation_interval", "sample_interval",
    "num_samples", "logger", "mixed_precision", "sampling_scheduler", "guidance_scale", "simplify_epsilon",
    "train_batch_size", "gradient_accumulation_steps", "data", "data_dir", "no_download", "cache_dir", "split"}


def run_options(args: argparse.Namespace, provenance: dict, num_processes: int = 1) -> dict:
    """What defines a training run (``training.run_record``): every option but ``RESUMABLE_OPTIONS``, plus the global
    batch and the training data's and split's sha1. Checkpoints record it; a run resumes only a checkpoint of the
    same run."""
    global_batch = args.train_batch_size * args.gradient_accumulation_steps * num_processes
    return run_record(vars(args), RESUMABLE_OPTIONS, trainer="train.py", global_batch_size=global_batch,
                      data_sha1=provenance["data_file"]["sha1"], split_sha1=provenance["split"]["sha1"])


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """``train.py``'s options: every flag with its default and help, validated (``parser.error`` names a bad one)."""
    p = argparse.ArgumentParser(prog="train.py", description=description,
                                formatter_class=DefaultsHelpFormatter)
    add_data_arguments(p)

    g = p.add_argument_group("model")
    g.add_argument("--points-per-stroke", type=int, default=64, help="points each stroke is resampled to")
    g.add_argument("--max-strokes", type=int, default=32, help="longest sketch; longer ones are filtered out")
    g.add_argument("--hidden-size", type=int, default=192, help="width of the stroke transformer")
    g.add_argument("--num-layers", type=int, default=4, help="layers of the stroke transformer")
    g.add_argument("--num-heads", type=int, default=4, help="attention heads")
    g.add_argument("--head-hidden-size", type=int, default=512, help="width of the denoiser MLP")
    g.add_argument("--head-num-blocks", type=int, default=4, help="adaLN blocks of the denoiser")
    g.add_argument("--head-conv-blocks", type=int, default=2,
                   help="residual 1-D convolution blocks along the points after the denoiser MLP (0 = the plain "
                        "MLP denoiser of the cat and bus releases)")
    g.add_argument("--head-conv-channels", type=int, default=32, help="channels of those convolutions")
    g.add_argument("--history-attention-layers", type=int, default=2,
                   help="cross-attention layers of the denoiser to the earlier strokes' points, after its first "
                        "adaLN blocks (at most --head-num-blocks)")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout in the stroke transformer")
    g.add_argument("--context-dropout", type=float, default=0.1,
                   help="fraction of strokes trained with the null context instead of their history, which "
                        "enables classifier-free guidance at sampling time (0 = off)")
    g.add_argument("--prediction-type", default="v_prediction", choices=("epsilon", "v_prediction", "sample"),
                   help="what the denoiser predicts; v_prediction lets sampling start from pure noise")
    g.add_argument("--num-train-timesteps", type=int, default=1000, help="DDPM noise levels")
    g.add_argument("--beta-schedule", default="squaredcos_cap_v2",
                   choices=("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"), help="DDPM beta schedule")
    g.add_argument("--sampling-scheduler", default="dpm", choices=tuple(SAMPLING_SCHEDULERS),
                   help="scheduler saved with the pipeline (another supported one can be swapped in later)")
    g.add_argument("--guidance-scale", type=float, default=1.0,
                   help="default classifier-free guidance scale saved with the pipeline (1.0 = none)")
    g.add_argument("--simplify-epsilon", type=float, default=2.0,
                   help="RDP tolerance (canvas pixels) saved with the pipeline: how generated strokes are "
                        "simplified as history and in the output (the official files use 2)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--augment", type=float, default=0.5,
                   help="strength of random augmentation, each sketch re-fitted to the canvas afterwards (0 = off; "
                        "1 = rotations up to 10 degrees and each axis stretched by up to 15%%)")
    g.add_argument("--train-batch-size", type=int, default=64, help="sketches per step per device")
    g.add_argument("--noise-draws", type=int, default=4, help="noise draws per stroke per step")
    g.add_argument("--stop-loss-weight", type=float, default=0.1, help="weight of the stop head's BCE loss")
    g.add_argument("--max-steps", type=int, default=None,
                   help="optimizer steps; default: --num-epochs passes over the training drawings")
    g.add_argument("--num-epochs", type=int, default=100, help="passes over the data when --max-steps is not given")
    g.add_argument("--max-train-minutes", type=float, default=None,
                   help="stop (and export) after this much training time; the LR schedule still follows --max-steps")
    g.add_argument("--gradient-accumulation-steps", type=int, default=1, help="batches per optimizer step")
    g.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW peak learning rate")
    g.add_argument("--lr-scheduler", default="cosine",
                   help="constant, constant_with_warmup, linear, cosine, ... (diffusers.optimization)")
    g.add_argument("--lr-warmup-steps", type=int, default=200, help="linear warm-up before --lr-scheduler")
    g.add_argument("--adam-beta1", type=float, default=0.9, help="AdamW beta1")
    g.add_argument("--adam-beta2", type=float, default=0.99, help="AdamW beta2")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    g.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm")
    g.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=True, help="keep an EMA of the weights")
    g.add_argument("--ema-max-decay", type=float, default=0.999, help="EMA decay reached after warm-up")
    g.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"),
                   help="autocast for the training forward pass; the weights stay float32. auto = bf16 where the "
                        "device computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else no")
    g.add_argument("--seed", type=int, default=0, help="of the weights' initialisation, the batches and the noise")

    g = p.add_argument_group("validation")
    g.add_argument("--validation-size", type=int, default=0,
                   help="hold out this many training drawings (chosen with --seed) and log their loss (0 = none)")
    g.add_argument("--validation-interval", type=int, default=250, help="log the validation loss every N steps")

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True, help="pipeline folder to write (also holds checkpoints, samples, logs)")
    g.add_argument("--overwrite-output-dir", action="store_true",
                   help="start a new run in an --output-dir that already holds a trained pipeline (and no checkpoint "
                        "to resume), replacing it")
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
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config")
    config_file = config.parse_known_args(argv)[0].config
    if config_file:  # the run's options, as flags before the ones given here (which win): checked like typed ones
        saved = read_run_config(config_file, p)
        argv = config_argv(config_file, saved, p) + list(sys.argv[1:] if argv is None else argv)
        p.set_defaults(**{key: None for key, value in saved.items() if value is None})  # as the run had them
    args = p.parse_args(argv)
    for action in p._actions:
        value = getattr(args, action.dest, None)
        if action.type is float and value is not None and not math.isfinite(value):
            p.error(f"{action.option_strings[0]} must be a finite number, got {value}")
    for name in ("train_batch_size", "noise_draws", "points_per_stroke", "max_strokes", "checkpointing_steps",
                 "gradient_accumulation_steps", "num_epochs", "checkpoints_total_limit", "validation_interval",
                 "head_conv_channels", "hidden_size", "num_layers", "num_heads", "head_hidden_size", "head_num_blocks",
                 "num_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.hidden_size % args.num_heads:
        p.error(f"--hidden-size {args.hidden_size} must be a multiple of --num-heads {args.num_heads}")
    if args.num_train_timesteps < 2:
        p.error(f"--num-train-timesteps must be at least 2, got {args.num_train_timesteps}")
    if args.augment < 0:
        p.error(f"--augment must be >= 0, got {args.augment}")
    if not 0.0 <= args.dropout < 1.0:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.sample_interval < 0:
        p.error(f"--sample-interval must be >= 0, got {args.sample_interval}")
    if args.max_steps is not None and args.max_steps < 1:
        p.error("--max-steps must be at least 1")
    for name, value, ok, what in (
            ("learning-rate", args.learning_rate, args.learning_rate > 0, "> 0"),
            ("max-grad-norm", args.max_grad_norm, args.max_grad_norm > 0, "> 0"),
            ("max-train-minutes", args.max_train_minutes, args.max_train_minutes is None or args.max_train_minutes > 0,
             "> 0"),
            ("stop-loss-weight", args.stop_loss_weight, args.stop_loss_weight >= 0, ">= 0"),
            ("weight-decay", args.weight_decay, args.weight_decay >= 0, ">= 0"),
            ("lr-warmup-steps", args.lr_warmup_steps, args.lr_warmup_steps >= 0, ">= 0"),
            ("ema-max-decay", args.ema_max_decay, 0 <= args.ema_max_decay <= 1, "in [0, 1]"),
            ("adam-beta1", args.adam_beta1, 0 <= args.adam_beta1 < 1, "in [0, 1)"),
            ("adam-beta2", args.adam_beta2, 0 <= args.adam_beta2 < 1, "in [0, 1)")):
        if not ok:
            p.error(f"--{name} must be {what}, got {value}")
    output_dir = Path(args.output_dir)
    own_checkpoints = list_checkpoints(output_dir / "checkpoints")
    if (output_dir / "model_index.json").is_file() and not own_checkpoints and not args.overwrite_output_dir:
        p.error(f"--output-dir {output_dir} holds a trained pipeline (model_index.json) and no checkpoint of a run "
                "to resume: a new run would replace it. Choose another --output-dir, or pass --overwrite-output-dir")
    for name in ("validation_size", "head_conv_blocks"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if not 0 <= args.history_attention_layers <= args.head_num_blocks:
        p.error(f"--history-attention-layers must be between 0 and --head-num-blocks {args.head_num_blocks}, got "
                f"{args.history_attention_layers}")
    if args.export_only and not args.resume_from_checkpoint:
        p.error("--export-only needs --resume-from-checkpoint")
    if not 0.0 <= args.context_dropout < 1.0:
        p.error(f"--context-dropout must be in [0, 1), got {args.context_dropout}")
    if args.simplify_epsilon < 0:
        p.error(f"--simplify-epsilon must be >= 0, got {args.simplify_epsilon}")
    if args.guidance_scale < 0:
        p.error(f"--guidance-scale must be >= 0, got {args.guidance_scale}")
    if args.guidance_scale != 1.0 and args.context_dropout == 0:
        p.error("--guidance-scale other than 1.0 needs --context-dropout > 0 (the null context is never trained otherwise)")
    return args


def config_argv(path: str, saved: dict, parser: argparse.ArgumentParser) -> list[str]:
    """The options of a run's config (``read_run_config``) as command-line flags, so that argparse checks their types
    and choices as it checks typed ones; a value no flag can take is refused, naming the file and the option.
    ``None`` (an option the run left unset) gives no flag, except for numbers that must be set."""
    argv = []
    for action in parser._actions:
        if action.dest not in saved or not action.option_strings:
            continue
        value, flag = saved[action.dest], action.option_strings[0]
        switch = action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction)
        if (switch and not isinstance(value, bool)) or isinstance(value, (list, dict)) or (
                not switch and isinstance(value, bool)) or (
                value is None and action.type in (int, float) and action.default is not None):
            parser.error(f"--config {path}: {action.dest} is {json.dumps(value)}, which {flag} cannot take")
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif switch:
            argv += [flag] if value else []
        elif value is not None:
            argv.append(f"{flag}={value}")
    return argv


def read_run_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """The options saved in a run's ``training_config.json`` that this parser knows, less the run-specific ones
    (output folder, resuming, export); options this train.py does not have are reported and skipped."""
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
    return {k: v for k, v in saved.items() if k in known}
