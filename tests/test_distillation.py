"""distill.py and the distilled sampler: a tiny teacher trained on the 25 real cats, distilled in a few steps."""

import json
import shutil
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import needs_shared
from test_train import assert_same_weights, one_cpu_thread, train_here

WEIGHTS = "diffusion_pytorch_model.safetensors"
# 4 distillation steps, then 2 of the discriminator alone and 4 adversarial ones
PHASES = ("--max-steps", "4", "--adversarial-steps", "6", "--discriminator-warmup-steps", "2", "--log-interval", "1")


def distill_argv(teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(teacher), "--output-dir", str(out), "--work-dir", str(out.parent / f"{out.name}-work"),
            "--cache-dir", str(teacher.parent / "cache"), "--teacher-sketches", "12", "--batch-size", "32",
            *extra]


def distill_here(argv: list[str]) -> Path:
    import distill

    with mock.patch.dict("os.environ", {"ACCELERATE_USE_CPU": "true"}):
        distill.main(argv)
    return Path(argv[argv.index("--output-dir") + 1])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill") / "teacher"
    train_here(folder, "--max-steps", "2", "--checkpointing-steps", "2")
    return folder


@pytest.fixture(scope="module")
def distilled(teacher):
    with one_cpu_thread():
        return distill_here(distill_argv(teacher, teacher.parent / "student", *PHASES, "--checkpointing-steps", "2"))


@needs_shared
def test_distilled_folder_loads_with_lcm_and_the_student_beside_its_teacher(teacher, distilled):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(distilled, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler).__name__ == "LCMScheduler" and pipe.default_num_inference_steps == 1
    out = pipe(num_sketches=3, generator=torch.Generator().manual_seed(0), return_trajectories=True)
    assert len(out.strokes) == 3 and out.trajectories[0][0].shape[0] == 2  # one step: the noise and the stroke

    teacher_weights, student = load_file(teacher / "transformer" / WEIGHTS), load_file(
        distilled / "distilled_transformer" / WEIGHTS)
    assert_same_weights(teacher_weights, load_file(distilled / "transformer" / WEIGHTS))  # the teacher is kept
    frozen = ("stroke_embed", "start_token", "position_embed", "blocks", "ln_f", "stop_head", "null_context")
    for name, tensor in student.items():
        same = torch.equal(tensor, teacher_weights[name])
        assert same == name.startswith(frozen), name  # encoder and stop head frozen, the whole denoiser trained
    assert json.loads((distilled / "distilled_transformer" / "config.json").read_text())["context_dropout"] == 0.0
    config = json.loads((distilled / "distillation_config.json").read_text())
    assert config["max_steps"] == 4 and config["trajectory_points"] > 0 and config["teacher_steps"] == 10
    assert config["adversarial_steps"] == 6 and config["real_strokes"] > 0
    index = json.loads((distilled / "model_index.json").read_text())
    assert index["distilled_mixed_precision"] == ("bf16" if config["mixed_precision"] == "bf16" else "no")
    log = [json.loads(line) for line in (distilled / "logs" / "distill_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == list(range(1, 11)) and all(entry["loss"] > 0 for entry in log)
    assert ["discriminator_loss" in entry for entry in log] == [False] * 4 + [True] * 6
    assert [entry["lr"] > 0 for entry in log] == [True] * 4 + [False] * 2 + [True] * 4  # the warm-up: only D learns
    assert [entry.get("adversarial_weight", 0) > 0 for entry in log] == [False] * 6 + [True] * 4


@needs_shared
def test_the_adversarial_phase_moves_the_student(teacher, distilled, tmp_path):
    with one_cpu_thread():
        plain = distill_here(distill_argv(teacher, tmp_path / "plain", "--max-steps", "4", "--adversarial-steps", "0",
                                            "--log-interval", "1"))
    log = [json.loads(line) for line in (plain / "logs" / "distill_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4] and "discriminator_loss" not in log[-1]
    plain, adversarial = (load_file(folder / "distilled_transformer" / WEIGHTS) for folder in (plain, distilled))
    moved = [name for name in plain if not torch.equal(plain[name], adversarial[name])]
    denoiser = ("head_", "conv_", "time_embed", "context_proj", "memory_", "history_attention")
    assert moved and all(name.startswith(denoiser) for name in moved)
    assert any(name.startswith("history_attention") for name in moved)  # the attention learns from the phase too


def test_the_discriminator_computes_in_float32_and_the_weight_balances_gradients():
    from sketch_diffusion.distillation import StrokeDiscriminator, adaptive_weight

    discriminator = StrokeDiscriminator(points_per_stroke=8, context_width=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = discriminator(torch.randn(5, 8, 2), torch.randn(5, 6))
    assert logits.shape == (5,) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match="not a multiple of 4"):
        StrokeDiscriminator(points_per_stroke=6, context_width=6)
    layer = torch.ones(3, requires_grad=True)
    assert adaptive_weight(2 * layer.sum(), -8 * layer.sum(), layer).item() == pytest.approx(0.25)


@needs_shared
def test_interrupted_distillation_resumes_to_the_same_student(teacher, distilled, tmp_path):
    import sketch_diffusion.distillation as distillation

    real_loss, calls = distillation.consistency_loss, []

    def dies_at_the_tenth_step(*args):  # after checkpoint-8: the student's adversarial optimizer has stepped twice
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real_loss(*args)

    argv = distill_argv(teacher, tmp_path / "student", *PHASES, "--checkpointing-steps", "2")
    with one_cpu_thread(), mock.patch.object(distillation, "consistency_loss", dies_at_the_tenth_step):
        with pytest.raises(KeyboardInterrupt):
            distill_here(argv)
    assert not (tmp_path / "student" / "distilled_transformer").exists()  # nothing exported from a broken run
    cached = tmp_path / "student-work" / distillation.TRAJECTORIES
    mtime = cached.stat().st_mtime_ns
    assert sorted(p.name for p in (tmp_path / "student-work" / "checkpoints").iterdir()) == ["checkpoint-6",
                                                                                           "checkpoint-8"]
    with one_cpu_thread():
        distill_here(argv)  # resumes at checkpoint-8 (both optimizers and the discriminator) with the cached paths
    assert cached.stat().st_mtime_ns == mtime
    assert_same_weights(load_file(distilled / "distilled_transformer" / WEIGHTS),
                        load_file(tmp_path / "student" / "distilled_transformer" / WEIGHTS))


@needs_shared
def test_a_distillation_resumes_only_its_own_checkpoints(teacher, distilled, tmp_path, capsys):
    other = tmp_path / "other-teacher"  # the same folder name and options, other weights
    shutil.copytree(teacher, other)
    weights = load_file(other / "transformer" / WEIGHTS)
    save_file({name: tensor + 1 for name, tensor in weights.items()}, other / "transformer" / WEIGHTS)
    argv = distill_argv(other, tmp_path / "student", *PHASES, "--checkpointing-steps", "2")
    argv[argv.index("--work-dir") + 1] = str(distilled.parent / "student-work")  # the finished run's checkpoints
    with pytest.raises(ValueError, match="is of a run with other options \\(teacher_weights_sha256="):
        distill_here(argv)
    with pytest.raises(ValueError, match="holds checkpoints of an earlier run"):
        distill_here(argv + ["--resume-from-checkpoint", "none"])
    assert not (tmp_path / "student").exists()


@needs_shared
def test_a_resume_may_not_move_the_adversarial_phase(teacher, distilled, tmp_path):
    from sketch_diffusion.training import CHECKPOINT_MARKER

    work = tmp_path / "student-work"
    shutil.copytree(distilled.parent / "student-work", work)
    argv = distill_argv(teacher, tmp_path / "student", *PHASES, "--checkpointing-steps", "2")
    with pytest.raises(ValueError, match="max_steps=4 there, 5 here"):  # it would re-run steps 4 and 5 as consistency
        distill_here(argv + ["--max-steps", "5"])
    for marker in work.glob(f"checkpoints/*/{CHECKPOINT_MARKER}"):  # as written before the adversarial phase existed
        saved = json.loads(marker.read_text())
        saved["run"] = {k: v for k, v in saved["run"].items() if not k.startswith(("adversarial", "discriminator"))}
        marker.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="adversarial_steps=0 there, 6 here"):
        distill_here(argv)
    assert not (tmp_path / "student").exists()


@needs_shared
def test_a_teacher_the_discriminator_cannot_read_is_refused_by_name(tmp_path):
    train_here(tmp_path / "teacher6", "--max-steps", "1", "--points-per-stroke", "6")
    with pytest.raises(ValueError, match="pass --adversarial-steps 0"):
        distill_here(distill_argv(tmp_path / "teacher6", tmp_path / "student", *PHASES))
    assert not (tmp_path / "student-work").exists()  # refused before the teacher drew anything


@needs_shared
def test_the_full_sampler_of_a_distilled_folder_is_its_teacher(teacher, distilled):
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

    def draw(folder, swap):
        pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
        pipe.set_progress_bar_config(disable=True)
        if swap:
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        out = pipe(num_sketches=3, generator=torch.Generator().manual_seed(1), output_type="np")
        return [[s.tolist() for s in sketch] for sketch in out.strokes]

    assert draw(distilled, swap=True) == draw(teacher, swap=False)


@needs_shared
def test_a_teacher_off_the_lcm_grid_is_refused_by_name(teacher, tmp_path):
    import shutil

    folder = tmp_path / "leading"
    shutil.copytree(teacher, folder)
    config_file = folder / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "timestep_spacing": "leading"}))
    with pytest.raises(ValueError, match="trailing"):
        distill_here(distill_argv(folder, tmp_path / "student", "--max-steps", "1"))


@pytest.mark.parametrize("extra, message", [
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--first-step-fraction", "1.5"], "--first-step-fraction must be in"),
    (["--lr-warmup-steps", "0"], "--lr-warmup-steps must be > 0, got 0"),
    (["--max-grad-norm", "-1"], "--max-grad-norm must be > 0, got -1.0"),
    (["--adversarial-steps", "-1"], "--adversarial-steps must be >= 0"),
    (["--adversarial-steps", "10", "--discriminator-warmup-steps", "10"], "--discriminator-warmup-steps in [0, "),
    (["--adversarial-weight", "nan"], "--adversarial-weight must be >= 0, got nan"),
    (["--discriminator-learning-rate", "0"], "--discriminator-learning-rate must be > 0, got 0.0"),
    (["--adversarial-steps", "0", "--discriminator-warmup-steps", "-5"], "--discriminator-warmup-steps in [0, "),
    (["--batch-size", "1"], "--batch-size must be at least 2 with an adversarial phase"),
])
def test_bad_distillation_flags_are_named(tmp_path, capsys, extra, message):
    from sketch_diffusion.distillation import parse_args

    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(SystemExit):
        parse_args(["--model", str(tmp_path), *extra])
    assert message in capsys.readouterr().err


def test_another_pipeline_is_not_replaced_unasked(tmp_path, capsys):
    from sketch_diffusion.distillation import parse_args

    for name in ("teacher", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model_index.json").write_text("{}")
    with pytest.raises(SystemExit):
        parse_args(["--model", str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "other")])
    assert "already holds a pipeline" in capsys.readouterr().err
    args = parse_args(["--model", str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "other"),
                       "--overwrite-output-dir"])
    assert args.output_dir == str(tmp_path / "other")
    assert parse_args(["--model", str(tmp_path / "teacher")]).output_dir == str(tmp_path / "teacher")  # in place


def test_a_folder_that_is_no_pipeline_is_refused(tmp_path, capsys):
    from sketch_diffusion.distillation import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--model", str(tmp_path)])
    assert "is not a pipeline folder" in capsys.readouterr().err


def test_a_distillation_batch_gives_each_stroke_the_history_sampling_gives_it():
    """Every stroke of random sketches, each seeing its own earlier strokes, as the pipeline draws it alone."""
    from conftest import TINY_MODEL
    from pipeline import StrokeDiffusionModel
    from sketch_diffusion.distillation import next_stroke_pairs, sketch_batch, sketch_memory

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**dict(TINY_MODEL, head_num_blocks=2, history_attention_layers=2))
    for p in model.parameters():  # the zero-initialised projections would hide the attention
        torch.nn.init.normal_(p, std=0.2)
    model.eval()
    strokes = torch.rand(5, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    lengths = torch.tensor([4, 1, 3, 2, 4])
    with torch.no_grad():
        contexts, all_strokes = next_stroke_pairs(model, strokes, lengths)
    sketches, rows = sketch_batch(lengths, 3, torch.Generator().manual_seed(0))
    assert len(rows) == int(lengths[sketches].sum())
    position = torch.cat([torch.arange(int(n)) for n in lengths[sketches]])
    for row, sketch, k in zip(rows.tolist(), sketches.repeat_interleave(lengths[sketches]).tolist(), position.tolist()):
        torch.testing.assert_close(all_strokes[row], strokes[sketch, k])  # rows index the chosen sketches' strokes

    noisy, t = torch.randn(len(rows), TINY_MODEL["points_per_stroke"], 2), torch.full((len(rows),), 400)
    with torch.no_grad():
        batched = model(noisy, t, contexts[rows], sketch_memory(model, strokes[sketches], lengths[sketches], "cpu"))
        for i, (sketch, k) in enumerate(zip(sketches.repeat_interleave(lengths[sketches]).tolist(), position.tolist())):
            memory = model.row_memory(strokes[sketch : sketch + 1, :k])
            alone = model(noisy[i : i + 1], t[:1], contexts[rows[i : i + 1]], memory)
            torch.testing.assert_close(alone[0], batched[i])
    assert sketch_memory(StrokeDiffusionModel(**TINY_MODEL), strokes, lengths, "cpu") is None  # no attention, no memory
