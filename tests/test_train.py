import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, TINY_MODEL, needs_shared, simplified_sample

TINY_FLAGS = [
    "--points-per-stroke", str(TINY_MODEL["points_per_stroke"]), "--max-strokes", "20",
    "--hidden-size", str(TINY_MODEL["hidden_size"]), "--num-layers", "1", "--num-heads", "2",
    "--head-hidden-size", str(TINY_MODEL["head_hidden_size"]), "--head-num-blocks", "1",
    "--train-batch-size", "8", "--lr-warmup-steps", "2", "--sample-interval", "0", "--logger", "none",
]


def run_train(tmp_path: Path, out: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "train.py"), "--category", "cat", "--data", str(simplified_sample("cat")),
           "--output-dir", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"), *TINY_FLAGS, *extra]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(folder: Path) -> dict:
    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


@needs_shared
def test_smoke_run_writes_a_loadable_pipeline_with_provenance(tmp_path):
    result = run_train(tmp_path, "m", "--max-steps", "4", "--checkpointing-steps", "2", "--sample-interval", "4",
                       "--augment", "1.0", "--resampling", "padded_vertices", "--simplify-epsilon", "1.5",
                       "--head-conv-blocks", "1", "--smoothing-passes", "2")
    if (os.cpu_count() or 1) > 1:  # run_train sets OMP_NUM_THREADS=1, as `accelerate launch` does on a CPU
        assert "training on the CPU with 1 of" in result.stderr and "--num_cpu_threads_per_process" in result.stderr
    out = tmp_path / "m"
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    sketches = pipe(num_sketches=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0)).strokes
    assert len(sketches) == 2 and all(len(s) >= 1 for s in sketches)
    assert pipe.transformer.config.resampling == "padded_vertices" and pipe.config.default_simplify_epsilon == 1.5  # options saved
    assert pipe.transformer.config.head_conv_blocks == 1 and pipe.config.default_smoothing_passes == 2
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["steps"] == 4
    assert provenance["drawings"]["train_rows"] == 25 and provenance["drawings"]["used"] == 25
    assert provenance["data_file"]["official"] is False and len(provenance["data_file"]["sha1"]) == 40
    assert json.loads((out / "training_config.json").read_text())["max_steps"] == 4
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DPMSolverMultistepScheduler" and scheduler["timestep_spacing"] == "trailing"
    assert scheduler["prediction_type"] == "v_prediction"
    assert (out / "samples" / "step-000004.png").is_file() and (out / "samples" / "step-000004.gif").is_file()
    log = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["checkpoint-2", "checkpoint-4"]
    checkpoint = out / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "ema" / "diffusion_pytorch_model.safetensors").is_file()  # EMA weights as safetensors
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # not as accelerate's pickle of a registered object


@needs_shared
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    common = ["--max-steps", "6", "--checkpointing-steps", "3", "--augment", "0.5", "--seed", "7"]
    run_train(tmp_path, "straight", *common)
    killed = run_train(tmp_path, "resumed", *common, "--debug-kill-at-step", "5", check=False)
    assert killed.returncode != 0  # SIGKILL after step 5: checkpoint-3 is the last good state
    assert not (tmp_path / "resumed" / "model_index.json").exists()
    run_train(tmp_path, "resumed", *common, "--resume-from-checkpoint", "latest")
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = [json.loads(x) for x in (tmp_path / "resumed" / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4, 5, 4, 5, 6]  # steps 4-5 were redone after the kill
    assert log[5]["elapsed_seconds"] > log[2]["elapsed_seconds"]  # training time carries over from checkpoint-3


@needs_shared
def test_time_budget_stops_with_a_resumable_checkpoint(tmp_path):
    run_train(tmp_path, "m", "--max-steps", "1000", "--checkpointing-steps", "500", "--max-train-minutes", "0.05")
    out = tmp_path / "m"
    steps = json.loads((out / "provenance.json").read_text())["steps"]
    assert 1 <= steps < 1000
    marker = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "checkpoint.json").read_text())
    assert marker["step"] == steps and marker["elapsed_seconds"] >= 3.0  # 0.05 min = 3 s
    exported = weights(out)
    run_train(tmp_path, "m", "--max-steps", "1000", "--checkpointing-steps", "500", "--max-train-minutes", "0.05",
              "--resume-from-checkpoint", "latest", "--export-only")
    again = weights(out)
    assert all(torch.equal(exported[k], again[k]) for k in exported)  # the checkpoint holds the final weights
    # what benchmarks/fid_vs_training_time.py does: export with the run's saved options and no model flags
    cmd = [sys.executable, str(REPO / "train.py"), "--config", str(out / "training_config.json"), "--category", "cat",
           "--output-dir", str(tmp_path / "export"), "--resume-from-checkpoint",
           str(out / "checkpoints" / f"checkpoint-{steps}"), "--export-only"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    replayed = weights(tmp_path / "export")
    assert all(torch.equal(exported[k], replayed[k]) for k in exported)
    read_config = lambda folder: json.loads((folder / "transformer" / "config.json").read_text())  # noqa: E731
    assert read_config(tmp_path / "export") == read_config(out)


@needs_shared
def test_corrupted_checkpoint_is_reported_not_loaded(tmp_path):
    run_train(tmp_path, "m", "--max-steps", "2", "--checkpointing-steps", "2")
    ckpt = tmp_path / "m" / "checkpoints" / "checkpoint-2"
    target = ckpt / "model.safetensors"
    target.write_bytes(target.read_bytes()[:-100] + b"\0" * 100)
    result = run_train(tmp_path, "m", "--max-steps", "4", "--resume-from-checkpoint", "latest", check=False)
    assert result.returncode != 0
    assert "corrupted" in result.stderr and "model.safetensors" in result.stderr


@needs_shared
def test_checkpoint_without_ema_weights_is_reported_not_loaded(tmp_path):
    run_train(tmp_path, "m", "--max-steps", "2", "--checkpointing-steps", "2")
    ckpt = tmp_path / "m" / "checkpoints" / "checkpoint-2"
    shutil.rmtree(ckpt / "ema")  # as in a checkpoint written before the EMA weights were saved as safetensors
    marker = json.loads((ckpt / "checkpoint.json").read_text())
    marker["files"] = {name: digest for name, digest in marker["files"].items() if not name.startswith("ema/")}
    (ckpt / "checkpoint.json").write_text(json.dumps(marker))
    result = run_train(tmp_path, "m", "--max-steps", "4", "--resume-from-checkpoint", "latest", check=False)
    assert result.returncode != 0
    assert "has no ema/ folder of EMA weights" in result.stderr and "--no-use-ema" in result.stderr


@needs_shared
def test_resuming_with_another_model_is_refused_by_name(tmp_path):
    run_train(tmp_path, "m", "--max-steps", "2", "--checkpointing-steps", "2", "--head-conv-blocks", "0")
    result = run_train(tmp_path, "m", "--max-steps", "4", "--resume-from-checkpoint", "latest", check=False)
    assert result.returncode != 0  # today's default has two convolution blocks
    assert "is of another model (head_conv_blocks=0 there, 2 here)" in result.stderr


@needs_shared
def test_interrupted_checkpoint_write_is_ignored_by_latest(tmp_path):
    sys.path.insert(0, str(REPO))
    import train

    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-4").mkdir(parents=True)  # no marker: a write that never finished
    (folder / ".checkpoint-6.tmp").mkdir()
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / train.CHECKPOINT_MARKER).write_text(json.dumps({"step": 2, "files": {}}))
    assert train.resolve_resume("latest", folder) == folder / "checkpoint-2"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        train.verify_checkpoint(folder / "checkpoint-4")


@needs_shared
def test_save_checkpoint_failure_keeps_previous_checkpoint(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO))
    import train

    class FullDisk:
        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "model.safetensors").write_bytes(b"partial")
            raise OSError(28, "No space left on device")

    folder = tmp_path / "checkpoints"
    good = folder / "checkpoint-2"
    good.mkdir(parents=True)
    (good / train.CHECKPOINT_MARKER).write_text(json.dumps({"step": 2, "files": {}}))
    with pytest.raises(OSError, match="No space left"):
        train.save_checkpoint(FullDisk(), folder, 4, limit=1)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2"]
    assert train.verify_checkpoint(good) == (2, 0.0)


@needs_shared
@pytest.mark.parametrize("extra, message", [
    (["--split", "/nonexistent/split.json"], "split file /nonexistent/split.json does not exist"),
    (["--data", "/nonexistent/cat.ndjson"], "--data /nonexistent/cat.ndjson does not exist"),
    (["--head-conv-blocks", "-1"], "--head-conv-blocks must be >= 0"),
    (["--validation-size", "-1"], "--validation-size must be >= 0"),
])
def test_bad_inputs_are_named(tmp_path, extra, message):
    result = run_train(tmp_path, "m", "--max-steps", "1", *extra, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_missing_official_data_says_how_to_get_it(tmp_path):
    cmd = [sys.executable, str(REPO / "train.py"), "--category", "bus", "--data-dir", str(tmp_path),
           "--no-download", "--output-dir", str(tmp_path / "m")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "python -m pipeline.data download --category bus" in result.stderr


def test_config_option_reads_a_runs_options_and_flags_override_them(tmp_path, capsys):
    sys.path.insert(0, str(REPO))
    import train

    saved = vars(train.parse_args(["--category", "cat", "--output-dir", "run", "--resampling", "padded_vertices",
                                   "--hidden-size", "48", "--no-use-ema", "--max-steps", "7"]))
    config = tmp_path / "training_config.json"
    config.write_text(json.dumps({**saved, "keep_vertices": True}))  # an option of an older version
    args = train.parse_args(["--config", str(config), "--category", "bus", "--output-dir", "export",
                             "--hidden-size", "64"])
    assert (args.resampling, args.use_ema, args.max_steps) == ("padded_vertices", False, 7)  # from the run
    assert (args.category, args.output_dir, args.hidden_size) == ("bus", "export", 64)  # given here
    assert "skipping options this train.py does not have: keep_vertices" in capsys.readouterr().err
    assert args.head_conv_blocks == 2  # saved with the run
    del saved["head_conv_blocks"]  # a run from before the option: its denoiser had no convolutions
    config.write_text(json.dumps(saved))
    args = train.parse_args(["--config", str(config), "--category", "cat", "--output-dir", "export"])
    assert args.head_conv_blocks == 0
    config.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        train.parse_args(["--config", str(config), "--category", "cat", "--output-dir", "x"])
    assert f"--config {config}: expected a JSON object of options, got list" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--config", str(tmp_path / "missing.json"), "--category", "cat", "--output-dir", "x"])
    assert "cannot read a training config" in capsys.readouterr().err


@pytest.mark.parametrize("context_dropout", [0.0, 0.5])
def test_context_dropout_trains_the_null_context(context_dropout):
    sys.path.insert(0, str(REPO))
    import train
    from diffusers import DDPMScheduler

    from pipeline import StrokeDiffusionModel

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL, context_dropout=context_dropout)
    for p in model.parameters():  # zero-initialised output and modulation layers would block the gradient
        torch.nn.init.normal_(p, std=0.1)
    objective = train.DiffusionObjective(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), noise_draws=2,
                                         stop_loss_weight=0.1)
    strokes = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    loss, _, _ = objective(strokes, torch.tensor([4, 2, 3]), torch.Generator().manual_seed(0))
    loss.backward()
    grad = model.null_context.grad
    trained = grad is not None and bool(grad.abs().sum() > 0)
    assert trained == (context_dropout > 0)


def test_link_pieces_trains_the_continuation_head_and_conditioning():
    sys.path.insert(0, str(REPO))
    import train
    from diffusers import DDPMScheduler

    from pipeline import StrokeDiffusionModel

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL, max_stroke_length=60.0, link_pieces=True)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    strokes = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    strokes[0, 1, 0] = strokes[0, 0, -1]  # stroke 1 of sketch 0 continues stroke 0
    objective = train.DiffusionObjective(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), noise_draws=2,
                                         stop_loss_weight=0.1)
    loss, _, _ = objective(strokes, torch.tensor([4, 2, 3]), torch.Generator().manual_seed(0))
    loss.backward()
    for name in ("link_embed", "link_head", "start_proj"):
        assert getattr(model, name).weight.grad.abs().sum() > 0, name
    plain = StrokeDiffusionModel(**TINY_MODEL, max_stroke_length=60.0)
    assert plain.link_head is None and not any("link" in k or "start_proj" in k for k in plain.state_dict())
    with pytest.raises(SystemExit):
        train.parse_args(["--category", "rabbit", "--output-dir", "x", "--link-pieces"])


def test_history_noise_moves_and_scales_whole_strokes_and_only_in_training():
    sys.path.insert(0, str(REPO))
    import train
    from diffusers import DDPMScheduler

    from pipeline import StrokeDiffusionModel

    strokes = torch.rand(2, 3, 8, 2) * 2 - 1
    moved = train.perturb_strokes(strokes, 0.05, torch.Generator().manual_seed(0))
    assert moved.shape == strokes.shape and not torch.allclose(moved, strokes)
    # each stroke keeps its shape: a shift and a uniform scale about its centre, the same for all its points
    centred = strokes - strokes.mean(dim=2, keepdim=True)
    ratio = (moved - moved.mean(dim=2, keepdim=True)) / centred
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-4)
    assert torch.equal(moved, train.perturb_strokes(strokes, 0.05, torch.Generator().manual_seed(0)))

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL)
    batch = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1, torch.tensor([4, 2, 3])
    losses = {}
    for noise in (0.0, 0.5):
        objective = train.DiffusionObjective(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), noise_draws=2,
                                             stop_loss_weight=0.1, history_noise=noise)
        for mode in ("train", "eval"):
            getattr(objective, mode)()
            losses[noise, mode] = objective(*batch, torch.Generator().manual_seed(0))[2].item()  # the stop loss
    model.train()
    assert losses[0.5, "train"] != losses[0.0, "train"]  # the stop head read the perturbed history
    assert losses[0.5, "eval"] == losses[0.0, "eval"]  # validation sees the real history


def test_timestep_power_one_keeps_the_uniform_draws_and_larger_powers_favour_low_noise():
    sys.path.insert(0, str(REPO))
    import train

    uniform = train.sample_timesteps(20_000, 1000, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(uniform, torch.randint(0, 1000, (20_000,), generator=torch.Generator().manual_seed(0)))
    low = train.sample_timesteps(20_000, 1000, 2.0, torch.Generator().manual_seed(0))
    assert low.dtype == torch.int64 and low.min() >= 0 and low.max() <= 999
    # P(t < 250) is 0.25 for uniform draws and sqrt(0.25) = 0.5 for power 2
    assert abs((uniform < 250).float().mean().item() - 0.25) < 0.02
    assert abs((low < 250).float().mean().item() - 0.5) < 0.02
    assert torch.equal(low, train.sample_timesteps(20_000, 1000, 2.0, torch.Generator().manual_seed(0)))
    with pytest.raises(SystemExit):
        train.parse_args(["--category", "rabbit", "--output-dir", "x", "--timestep-power", "0"])
