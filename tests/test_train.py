"""train.py and the training library under it.

Most runs call ``train.main(argv)`` in this process (the same code path as the command line, without the cost of a
fresh interpreter); the kill-and-resume test and the missing-data message run ``python train.py`` as a real process.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, TINY_MODEL, needs_shared, simplified_sample

TINY_FLAGS = [
    "--points-per-stroke", str(TINY_MODEL["points_per_stroke"]), "--max-strokes", "20",
    "--hidden-size", str(TINY_MODEL["hidden_size"]), "--num-layers", "1", "--num-heads", "2",
    "--head-hidden-size", str(TINY_MODEL["head_hidden_size"]), "--head-num-blocks", "1",
    "--history-attention-layers", "1",
    "--train-batch-size", "8", "--lr-warmup-steps", "2", "--sample-interval", "0", "--logger", "none",
]


def train_argv(folder: Path, *extra: str) -> list[str]:
    """A tiny run on the 25 real cats into ``folder`` (its Arrow cache beside it)."""
    return ["--category", "cat", "--data", str(simplified_sample("cat")), "--output-dir", str(folder),
            "--cache-dir", str(folder.parent / "cache"), *TINY_FLAGS, *extra]


@contextlib.contextmanager
def one_cpu_thread():
    """The one thread that ``run_train``'s processes get (OMP_NUM_THREADS=1), so runs here give the same weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_main(argv: list[str]) -> None:
    """``train.py`` in this process, on the CPU (as ``run_train``'s processes, whatever accelerator is here)."""
    import train

    with mock.patch.dict(os.environ, {"ACCELERATE_USE_CPU": "true"}):
        train.main(argv)


def train_here(folder: Path, *extra: str) -> None:
    """A tiny run (``train_argv``) in this process."""
    train_main(train_argv(folder, *extra))


def run_train(folder: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python train.py`` in a fresh process, on one CPU thread as ``accelerate launch`` gives it."""
    cmd = [sys.executable, str(REPO / "train.py"), *train_argv(folder, *extra)]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_error(folder: Path, capsys, *extra: str) -> str:
    """The message with which a run that must fail stops: a refused flag (exit 2, on stderr) or the error that
    ``python train.py`` prints."""
    with pytest.raises((SystemExit, ValueError, OSError)) as info:
        train_here(folder, *extra)
    if info.type is SystemExit:
        assert info.value.code != 0
        return capsys.readouterr().err
    return str(info.value)


def weights(folder: Path) -> dict:
    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@needs_shared
def test_smoke_run_writes_a_loadable_pipeline_with_provenance(tmp_path):
    out = tmp_path / "m"
    train_here(out, "--max-steps", "4", "--checkpointing-steps", "2", "--sample-interval", "4", "--augment", "1.0",
               "--simplify-epsilon", "1.5", "--head-conv-blocks", "1", "--validation-size", "5",
               "--validation-interval", "2")
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    sketches = pipe(num_sketches=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0)).strokes
    assert len(sketches) == 2 and all(len(s) >= 1 for s in sketches)
    assert pipe.config.simplify_epsilon == 1.5 and pipe.transformer.config.head_conv_blocks == 1  # options saved
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["steps"] == 4
    assert provenance["drawings"]["train_rows"] == 25 and provenance["drawings"]["used"] == 20
    assert provenance["drawings"]["validation"] == 5
    assert provenance["data_file"]["official"] is False and len(provenance["data_file"]["sha1"]) == 40
    config = json.loads((out / "training_config.json").read_text())
    assert config["max_steps"] == 4 and config["mixed_precision"] in ("no", "bf16")  # auto, saved as what it chose
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DPMSolverMultistepScheduler" and scheduler["timestep_spacing"] == "trailing"
    assert scheduler["prediction_type"] == "v_prediction"
    assert (out / "samples" / "step-000004.png").is_file() and (out / "samples" / "step-000004.gif").is_file()
    log = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    validation = [json.loads(line) for line in (out / "logs" / "validation_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in validation] == [2, 4]
    assert all(entry["val_denoise_loss"] > 0 and entry["val_stop_loss"] > 0 for entry in validation)
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["checkpoint-2", "checkpoint-4"]
    checkpoint = out / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "ema" / "diffusion_pytorch_model.safetensors").is_file()  # EMA weights as safetensors
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # not as accelerate's pickle of a registered object


@needs_shared
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    common = ["--max-steps", "6", "--checkpointing-steps", "3", "--augment", "0.5", "--seed", "7", "--dropout", "0.1",
              "--validation-size", "4", "--validation-interval", "3", "--sample-interval", "3"]  # all on step 3
    with one_cpu_thread():
        train_here(tmp_path / "straight", *common)
    killed = run_train(tmp_path / "resumed", *common, "--debug-kill-at-step", "5", check=False)
    assert killed.returncode != 0  # SIGKILL after step 5: checkpoint-3 is the last good state
    assert not (tmp_path / "resumed" / "model_index.json").exists()
    if (os.cpu_count() or 1) > 1:  # run_train sets OMP_NUM_THREADS=1, as `accelerate launch` does on a CPU
        assert "training on the CPU with 1 of" in killed.stderr and "--num_cpu_threads_per_process" in killed.stderr
    run_train(tmp_path / "resumed", *common, "--resume-from-checkpoint", "latest")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    log = [json.loads(x) for x in (tmp_path / "resumed" / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4, 5, 6]  # the killed run's steps 4-5 left the log
    assert log[5]["elapsed_seconds"] > log[2]["elapsed_seconds"]  # training time carries over from checkpoint-3


@needs_shared
def test_time_budget_stops_with_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "m"
    budget = ["--max-steps", "1000", "--checkpointing-steps", "500", "--max-train-minutes", "0.05"]
    train_here(out, *budget)
    steps = json.loads((out / "provenance.json").read_text())["steps"]
    assert 1 <= steps < 1000
    marker = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "checkpoint.json").read_text())
    assert marker["step"] == steps and marker["elapsed_seconds"] >= 3.0  # 0.05 min = 3 s
    exported = weights(out)
    train_here(out, *budget, "--resume-from-checkpoint", "latest", "--export-only")
    assert_same_weights(exported, weights(out))  # the checkpoint holds the final weights
    # what benchmarks/fid_vs_training_time.py does: export with the run's saved options and no model flags
    train_main(["--config", str(out / "training_config.json"), "--category", "cat", "--output-dir", str(tmp_path / "export"),
                "--resume-from-checkpoint", str(out / "checkpoints" / f"checkpoint-{steps}"), "--export-only"])
    assert_same_weights(exported, weights(tmp_path / "export"))
    read_config = lambda folder: json.loads((folder / "transformer" / "config.json").read_text())  # noqa: E731
    assert read_config(tmp_path / "export") == read_config(out)


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory):
    """A finished 2-step run with its checkpoint-2 (today's default denoiser: 2 convolution blocks), for the tests
    that resume from a damaged or mismatched copy of it."""
    if not simplified_sample("cat").is_file():
        pytest.skip("the real samples live in ../shared")
    folder = tmp_path_factory.mktemp("two_step") / "m"
    train_here(folder, "--max-steps", "2", "--checkpointing-steps", "2")
    return folder


def resume_copy(run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``run`` to damage, and its checkpoint-2."""
    folder = tmp_path / "m"
    shutil.copytree(run, folder)
    return folder, folder / "checkpoints" / "checkpoint-2"


def test_corrupted_checkpoint_is_reported_not_loaded(two_step_run, tmp_path, capsys):
    folder, ckpt = resume_copy(two_step_run, tmp_path)
    target = ckpt / "model.safetensors"
    target.write_bytes(target.read_bytes()[:-100] + b"\0" * 100)
    message = train_error(folder, capsys, "--max-steps", "4", "--resume-from-checkpoint", "latest")
    assert "corrupted" in message and "model.safetensors" in message


def test_checkpoint_without_ema_weights_is_reported_not_loaded(two_step_run, tmp_path, capsys):
    folder, ckpt = resume_copy(two_step_run, tmp_path)
    shutil.rmtree(ckpt / "ema")  # as in a checkpoint written before the EMA weights were saved as safetensors
    marker = json.loads((ckpt / "checkpoint.json").read_text())
    marker["files"] = {name: digest for name, digest in marker["files"].items() if not name.startswith("ema/")}
    (ckpt / "checkpoint.json").write_text(json.dumps(marker))
    message = train_error(folder, capsys, "--max-steps", "2", "--resume-from-checkpoint", "latest")
    assert "has no ema/ folder of EMA weights" in message and "--no-use-ema" in message


def test_resuming_with_another_model_is_refused_by_name(two_step_run, tmp_path, capsys):
    folder, _ = resume_copy(two_step_run, tmp_path)
    message = train_error(folder, capsys, "--max-steps", "2", "--resume-from-checkpoint", "latest",
                          "--head-conv-blocks", "0")
    assert "is of a run with other options (head_conv_blocks=2 there, 0 here)" in message


def test_a_checkpoint_of_another_trainer_is_refused_by_name(two_step_run, tmp_path, capsys):
    from sketch_diffusion.training import CHECKPOINT_MARKER

    folder, _ = resume_copy(two_step_run, tmp_path)
    marker = folder / "checkpoints" / "checkpoint-2" / CHECKPOINT_MARKER
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps(dict(record, run=dict(record["run"], trainer="train_sketch_rnn.py"))))
    message = train_error(folder, capsys, "--max-steps", "2", "--resume-from-checkpoint", "latest")
    assert "was written by train_sketch_rnn.py, not train.py" in message


def test_a_run_resumes_only_its_own_checkpoints(two_step_run, tmp_path, capsys):
    folder, _ = resume_copy(two_step_run, tmp_path)
    message = train_error(folder, capsys, "--max-steps", "2")  # a fresh start would replace and prune them
    assert "holds checkpoints of an earlier run (the latest: checkpoint-2)" in message
    message = train_error(folder, capsys, "--max-steps", "2", "--resume-from-checkpoint", "latest",
                          "--learning-rate", "0.5")  # the checkpoint's optimizer state would win silently
    assert "is of a run with other options (learning_rate=0.001 there, 0.5 here)" in message
    elsewhere = tmp_path / "other"
    shutil.copytree(folder, elsewhere)
    message = train_error(elsewhere, capsys, "--max-steps", "2", "--seed", "5", "--resume-from-checkpoint",
                          str(elsewhere / "checkpoints" / "checkpoint-2"))
    assert "(seed=0 there, 5 here)" in message
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["checkpoint-2"]


@needs_shared
def test_training_into_a_distilled_folder_leaves_no_stale_student(tmp_path, capsys):
    from sketch_diffusion.provenance import weights_sha256

    out = tmp_path / "m"
    (out / "distilled_transformer").mkdir(parents=True)  # as distill.py left it for the earlier weights
    (out / "distilled_transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"old student")
    (out / "distillation_config.json").write_text("{}")
    (out / "model_index.json").write_text('{"_class_name": "an earlier export"}')
    assert "holds a trained pipeline" in train_error(out, capsys, "--max-steps", "1")  # not replaced unasked
    assert (out / "distilled_transformer").exists()
    train_here(out, "--max-steps", "1", "--overwrite-output-dir")
    assert not (out / "distilled_transformer").exists() and not (out / "distillation_config.json").exists()
    assert json.loads((out / "model_index.json").read_text())["distilled_transformer"] == [None, None]  # none
    assert json.loads((out / "provenance.json").read_text())["weights_sha256"] == weights_sha256(out)


@needs_shared
def test_a_diverging_run_stops_and_exports_nothing(tmp_path):
    with pytest.raises(FloatingPointError, match="the (training loss|gradient norm) is .* nothing is exported"):
        train_here(tmp_path / "m", "--max-steps", "6", "--learning-rate", "1e30", "--lr-warmup-steps", "0")
    assert not (tmp_path / "m" / "model_index.json").exists()


def test_log_trimming_drops_steps_past_the_checkpoint_and_a_cut_line(tmp_path):
    from sketch_diffusion.fileio import trim_jsonl

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n[1]\n{"step": null}\n{"step": 3}\n{"st')
    trim_jsonl(log, 2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    log.write_text('{"step": 1}')  # the last line's newline lost: the next append must not join it
    trim_jsonl(log, 5)
    assert log.read_text() == '{"step": 1}\n'
    trim_jsonl(tmp_path / "missing.jsonl", 0)
    assert not (tmp_path / "missing.jsonl").exists()


def test_interrupted_checkpoint_write_is_ignored_by_latest(tmp_path):
    from sketch_diffusion.training import CHECKPOINT_MARKER, resolve_resume, verify_checkpoint

    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-4").mkdir(parents=True)  # no marker: a write that never finished
    (folder / ".checkpoint-6.tmp").mkdir()
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / CHECKPOINT_MARKER).write_text(json.dumps({"step": 2, "files": {}}))
    assert resolve_resume("latest", folder) == folder / "checkpoint-2"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        verify_checkpoint(folder / "checkpoint-4")


def test_save_checkpoint_failure_keeps_previous_checkpoint(tmp_path):
    from sketch_diffusion.training import CHECKPOINT_MARKER, save_checkpoint, verify_checkpoint

    class FullDisk:
        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)  # as accelerate does
            (Path(path) / "model.safetensors").write_bytes(b"partial")
            raise OSError(28, "No space left on device")

    folder = tmp_path / "checkpoints"
    good = folder / "checkpoint-2"
    good.mkdir(parents=True)
    (good / CHECKPOINT_MARKER).write_text(json.dumps({"step": 2, "files": {}}))
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(FullDisk(), folder, 4, limit=1)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2"]
    assert verify_checkpoint(good) == (2, 0.0)


@needs_shared
@pytest.mark.parametrize("extra, message", [
    (["--split", "/nonexistent/split.json"], "split file /nonexistent/split.json does not exist"),
    (["--data", "/nonexistent/cat.ndjson"], "--data /nonexistent/cat.ndjson does not exist"),
    (["--category", "bus"], "none of 'bus': is it the right file for --category bus?"),
    (["--validation-size", "25"], "--validation-size 25 leaves nothing to train on (25 drawings)"),
    (["--head-conv-blocks", "-1"], "--head-conv-blocks must be >= 0"),
    (["--validation-size", "-1"], "--validation-size must be >= 0"),
    (["--augment", "nan"], "--augment must be a finite number, got nan"),
    (["--num-heads", "0"], "--num-heads must be at least 1, got 0"),
    (["--hidden-size", "9"], "--hidden-size 9 must be a multiple of --num-heads 2"),
    (["--num-train-timesteps", "1"], "--num-train-timesteps must be at least 2, got 1"),
    (["--beta-schedule", "bogus"], "argument --beta-schedule: invalid choice: 'bogus'"),
    (["--num-samples", "0"], "--num-samples must be at least 1, got 0"),
    (["--max-grad-norm", "-1"], "--max-grad-norm must be > 0, got -1.0"),
    (["--max-train-minutes", "-1"], "--max-train-minutes must be > 0, got -1.0"),
    (["--stop-loss-weight", "-5"], "--stop-loss-weight must be >= 0, got -5.0"),
    (["--ema-max-decay", "5"], "--ema-max-decay must be in [0, 1], got 5.0"),
    (["--lr-warmup-steps", "-3"], "--lr-warmup-steps must be >= 0, got -3"),
])
def test_bad_inputs_are_named(tmp_path, capsys, extra, message):
    assert message in train_error(tmp_path / "m", capsys, "--max-steps", "1", *extra)
    assert not (tmp_path / "m" / "model_index.json").exists()


def test_missing_official_data_says_how_to_get_it(tmp_path):
    cmd = [sys.executable, str(REPO / "train.py"), "--category", "bus", "--data-dir", str(tmp_path),
           "--no-download", "--output-dir", str(tmp_path / "m")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # train.py's own error exit, not a traceback
    assert "python -m sketch_diffusion.data download --category bus" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_option_reads_a_runs_options_and_flags_override_them(tmp_path, capsys):
    from sketch_diffusion.train_options import parse_args

    saved = vars(parse_args(["--category", "cat", "--output-dir", "run", "--simplify-epsilon", "1.5",
                             "--hidden-size", "48", "--no-use-ema", "--max-steps", "7", "--head-conv-blocks", "0"]))
    config = tmp_path / "training_config.json"
    config.write_text(json.dumps({**saved, "resampling": "vertices"}))  # an option of an older version
    args = parse_args(["--config", str(config), "--category", "bus", "--output-dir", "export", "--hidden-size", "64"])
    assert (args.simplify_epsilon, args.use_ema, args.max_steps, args.head_conv_blocks) == (1.5, False, 7, 0)  # run's
    assert (args.category, args.output_dir, args.hidden_size) == ("bus", "export", 64)  # given here
    assert "skipping options this train.py does not have: resampling" in capsys.readouterr().err
    assert not hasattr(args, "resampling")
    assert parse_args(["--config", str(config), "--output-dir", "export"]).category == "cat"  # no --category needed
    config.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(config), "--category", "cat", "--output-dir", "x"])
    assert f"--config {config}: expected a JSON object of options, got list" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "missing.json"), "--category", "cat", "--output-dir", "x"])
    assert "cannot read a training config" in capsys.readouterr().err


@pytest.mark.parametrize("category", ["cat", "bus", "rabbit"])
def test_shipped_training_config_rebuilds_the_shipped_model(category):
    """``--config models/<c>/training_config.json`` (how a shipped run is exported or continued) builds the model
    its folder holds: every option the run used is in its config."""
    from sketch_diffusion.train_options import parse_args
    from sketch_diffusion.training import build_model

    from safetensors import safe_open

    folder = REPO / "models" / category
    args = parse_args(["--config", str(folder / "training_config.json"), "--category", category, "--output-dir", "x"])
    model = build_model(args)
    with safe_open(folder / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as f:
        shipped_shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    assert shipped_shapes == {name: tuple(t.shape) for name, t in model.state_dict().items()}
    shipped = json.loads((folder / "transformer" / "config.json").read_text())
    unused = {"head_conv_channels"} if shipped["head_conv_blocks"] == 0 else set()  # no convolutions to size
    for key, value in shipped.items():
        if not key.startswith("_") and key not in unused:
            assert model.config[key] == value, key


@pytest.mark.parametrize("flag", [["--resampling", "vertices"], ["--max-stroke-length", "60"], ["--link-pieces"],
                                  ["--smoothing-passes", "1"], ["--history-noise", "0.05"],
                                  ["--timestep-power", "2"]])
def test_removed_experiment_flags_are_refused(flag, capsys):
    from sketch_diffusion.train_options import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--category", "rabbit", "--output-dir", "x", *flag])
    assert f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                          (False, False, "no")])
def test_mixed_precision_auto_is_bf16_only_on_cpus_that_compute_it(avx512_bf16, amx, expected):
    from sketch_diffusion.training import resolve_mixed_precision

    with mock.patch("torch.cuda.is_available", return_value=False), \
            mock.patch("torch.cpu._is_avx512_bf16_supported", return_value=avx512_bf16, create=True), \
            mock.patch("torch.cpu._is_amx_tile_supported", return_value=amx, create=True):
        assert resolve_mixed_precision("auto") == expected
        assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("bf16") == "bf16"


def test_sampling_scheduler_starts_from_pure_noise_where_the_prediction_allows():
    from sketch_diffusion.settings import scheduler_class
    from sketch_diffusion.train_options import parse_args
    from sketch_diffusion.training import build_schedulers

    for prediction, spacing, first in [("v_prediction", "trailing", 999), ("epsilon", "leading", 900)]:
        args = parse_args(["--category", "cat", "--output-dir", "x", "--prediction-type", prediction,
                           "--sampling-scheduler", "ddim"])
        train_scheduler, sampler = build_schedulers(args)
        assert type(sampler).__name__ == "DDIMScheduler" and sampler.config.prediction_type == prediction
        assert sampler.config.timestep_spacing == spacing
        sampler.set_timesteps(10)
        assert int(sampler.timesteps[0]) == first
        assert train_scheduler.config.num_train_timesteps == sampler.config.num_train_timesteps == 1000
    with pytest.raises(ValueError, match="unknown scheduler 'euler'; choose one of ddpm, ddim, dpm"):
        scheduler_class("euler")


@pytest.mark.parametrize("context_dropout", [0.0, 0.5])
def test_context_dropout_trains_the_null_context(context_dropout):
    from diffusers import DDPMScheduler

    from pipeline import StrokeDiffusionModel
    from sketch_diffusion.training import DiffusionObjective

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL, context_dropout=context_dropout)
    for p in model.parameters():  # zero-initialised output and modulation layers would block the gradient
        torch.nn.init.normal_(p, std=0.1)
    objective = DiffusionObjective(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), noise_draws=2,
                                   stop_loss_weight=0.1)
    strokes = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    generators = [torch.Generator().manual_seed(i) for i in range(3)]  # one per sketch
    loss, _, _ = objective(strokes, torch.tensor([4, 2, 3]), generators)
    loss.backward()
    grad = model.null_context.grad
    trained = grad is not None and bool(grad.abs().sum() > 0)
    assert trained == (context_dropout > 0)


def test_padded_denoiser_rows_are_left_out_of_the_loss(monkeypatch):
    """The objective pads its noisy strokes to a multiple of ROW_BUCKET rows (for kernel reuse): the loss and the
    gradients are those of the unpadded rows."""
    from diffusers import DDPMScheduler

    from pipeline import StrokeDiffusionModel
    from sketch_diffusion import training

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL, head_conv_blocks=1, head_conv_channels=8)
    for p in model.parameters():  # zero-initialised output and modulation layers would hide the padding's effect
        torch.nn.init.normal_(p, std=0.1)
    objective = training.DiffusionObjective(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), noise_draws=2,
                                            stop_loss_weight=0.1)
    strokes = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1

    def loss_and_grads(bucket):
        monkeypatch.setattr(training, "ROW_BUCKET", bucket)
        model.zero_grad()
        loss = objective(strokes, torch.tensor([4, 2, 3]), [torch.Generator().manual_seed(i) for i in range(3)])
        loss[0].backward()
        return torch.stack(loss).detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (padded, padded_grads), (plain, plain_grads) = loss_and_grads(256), loss_and_grads(1)  # 18 rows: 238 padding
    torch.testing.assert_close(padded, plain)
    assert len(padded_grads) == len(plain_grads) > 10
    for a, b in zip(padded_grads, plain_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "train_sketch_rnn.py"])
def test_help_shows_real_defaults_only(script, capsys, monkeypatch):
    import runpy

    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default:") >= 8  # the flags that have one say it
    if script != "evaluate.py":
        assert "--seed SEED of the" in text  # every training flag explains itself
    assert ("--augment" in text) == (script == "train.py")  # the Sketch-RNN baseline does not augment


@pytest.mark.parametrize("saved, message", [
    ({"prediction_type": "foo"}, "argument --prediction-type: invalid choice: 'foo'"),
    ({"use_ema": "false"}, "use_ema is \"false\", which --use-ema cannot take"),
    ({"max_steps": 2.5}, "argument --max-steps: invalid int value: '2.5'"),
    ({"train_batch_size": None}, "train_batch_size is null, which --train-batch-size cannot take"),
    ({"learning_rate": [0.001]}, "learning_rate is [0.001], which --learning-rate cannot take"),
])
def test_config_values_are_checked_like_flags(tmp_path, capsys, saved, message):
    from sketch_diffusion.train_options import parse_args

    config = tmp_path / "training_config.json"
    config.write_text(json.dumps({"category": "cat", **saved}))
    with pytest.raises(SystemExit):
        parse_args(["--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert message in capsys.readouterr().err
