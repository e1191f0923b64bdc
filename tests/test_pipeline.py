import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
import torch
import diffusers
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

from conftest import (TINY_MODEL, make_tiny_distilled_pipeline, make_tiny_pipeline, needs_shared, simplified_sample,
                      sketches_equal)
from pipeline import StrokeDiffusionModel, StrokeDiffusionPipeline
from pipeline.pipeline_stroke_diffusion import SUPPORTED_SCHEDULERS
from pipeline.representation import pixels_to_unit, simplify_normalized, unit_to_pixels
from sketch_diffusion.data import load_strokes


def test_output_structure(tiny_pipeline):
    out = tiny_pipeline(num_sketches=3, num_inference_steps=4, generator=torch.Generator().manual_seed(0),
                        max_strokes=6, return_progress=True, return_trajectories=True, image_size=64,
                        stroke_format="raw")
    assert len(out.strokes) == len(out.images) == len(out.progress) == len(out.trajectories) == 3
    for strokes, image, progress, trajectories in zip(out.strokes, out.images, out.progress, out.trajectories):
        assert 1 <= len(strokes) <= 6
        assert all(s.shape == (TINY_MODEL["points_per_stroke"], 2) for s in strokes)
        assert all(s.min() >= 0 and s.max() <= 255 for s in strokes)  # canvas pixels
        assert image.size == (64, 64)
        assert len(progress) == len(strokes)
        assert len(trajectories) == len(strokes)
        assert trajectories[0].shape == (5, TINY_MODEL["points_per_stroke"], 2)  # steps + 1
        np.testing.assert_allclose(trajectories[-1][-1][[0, -1]].clip(0, 255), strokes[-1][[0, -1]], atol=1e-3)
    arr = tiny_pipeline(num_sketches=2, num_inference_steps=2, output_type="np", image_size=32).images
    assert arr.shape == (2, 32, 32) and arr.dtype == np.uint8


def test_strokes_output_renders_nothing_and_draws_the_same_sketches(tiny_pipeline):
    kwargs = dict(num_sketches=3, num_inference_steps=3, max_strokes=5)
    plain = tiny_pipeline(**kwargs, output_type="strokes", generator=torch.Generator().manual_seed(0))
    rendered = tiny_pipeline(**kwargs, generator=torch.Generator().manual_seed(0))
    assert plain.images is None and len(rendered.images) == 3
    assert sketches_equal(plain.strokes, rendered.strokes)


def test_simplified_strokes_follow_the_official_format(tiny_pipeline):
    kwargs = dict(num_sketches=4, num_inference_steps=3, max_strokes=6, return_trajectories=True)
    raw = tiny_pipeline(**kwargs, stroke_format="raw", generator=torch.Generator().manual_seed(0))
    out = tiny_pipeline(**kwargs, generator=torch.Generator().manual_seed(0))
    for raw_sketch, sketch, trajectories in zip(raw.strokes, out.strokes, out.trajectories):
        assert len(sketch) == len(raw_sketch)
        points = np.concatenate(sketch)
        np.testing.assert_array_equal(points, np.round(points))  # integer pixels
        np.testing.assert_array_equal(points.min(axis=0), [0, 0])  # touches the top and left edges
        assert points.max() == 255  # the longer side spans the canvas
        assert all(2 <= len(s) <= TINY_MODEL["points_per_stroke"] for s in sketch)  # RDP keeps the ends
        for stroke, path in zip(sketch, trajectories):  # trajectories are mapped onto the same canvas
            np.testing.assert_allclose(path[-1][[0, -1]], stroke[[0, -1]], atol=0.5 + 1e-4)


def test_every_drawn_stroke_is_its_denoised_stroke_simplified_and_resampled(tiny_pipeline):
    """The history encoder reads each drawn stroke in the piecewise-linear form of its training data: the end of its
    denoising trajectory, RDP-simplified (the pipeline's simplify_epsilon) and resampled by arc length."""
    out = tiny_pipeline(num_sketches=4, num_inference_steps=3, max_strokes=6, stroke_format="raw",
                        return_trajectories=True, generator=torch.Generator().manual_seed(0))
    projected = 0
    for sketch, trajectories in zip(out.strokes, out.trajectories):
        assert len(sketch) == len(trajectories)
        for stroke, path in zip(sketch, trajectories):
            denoised = pixels_to_unit(path[-1].clip(0, 255))[None]
            expected = unit_to_pixels(simplify_normalized(denoised, tiny_pipeline.config.simplify_epsilon))[0]
            np.testing.assert_allclose(stroke, expected, atol=1e-3)
            projected += not np.allclose(stroke, path[-1].clip(0, 255), atol=1e-2)
    assert projected > 0  # the projection moved points: the comparison above is not of a stroke with itself


def test_same_seed_same_sketches_and_batches_vary_in_length(tiny_pipeline):
    run = lambda seed: tiny_pipeline(num_sketches=16, num_inference_steps=3, max_strokes=10,  # noqa: E731
                                     generator=torch.Generator().manual_seed(seed)).strokes
    a, b, c = run(1), run(1), run(2)
    assert sketches_equal(a, b)
    assert not sketches_equal(a, c)
    assert len({len(s) for s in a}) > 1  # the stop head ends sketches at different strokes


@pytest.mark.parametrize("scheduler_name", sorted(SUPPORTED_SCHEDULERS))
def test_every_supported_scheduler_can_be_swapped_in(tiny_pipeline, scheduler_name):
    tiny_pipeline.scheduler = getattr(diffusers, scheduler_name).from_config(tiny_pipeline.scheduler.config)
    out1 = tiny_pipeline(num_sketches=2, num_inference_steps=5, max_strokes=4, generator=torch.Generator().manual_seed(3))
    out2 = tiny_pipeline(num_sketches=2, num_inference_steps=5, max_strokes=4, generator=torch.Generator().manual_seed(3))
    assert sketches_equal(out1.strokes, out2.strokes)
    assert all(np.isfinite(s).all() for sketch in out1.strokes for s in sketch)


def test_temperature_changes_spread(tiny_pipeline):
    def spread(temperature):
        out = tiny_pipeline(num_sketches=8, num_inference_steps=3, max_strokes=2, temperature=temperature, stroke_format="raw",
                            generator=torch.Generator().manual_seed(0))
        return np.std(np.concatenate([s[0] for s in out.strokes]))
    assert spread(0.1) < spread(1.0)


@needs_shared
def test_completion_keeps_the_real_prefix(tiny_pipeline):
    cat = load_strokes(simplified_sample("cat"))[0]
    prefix = cat[:3]
    out = tiny_pipeline(num_sketches=2, num_inference_steps=3, max_strokes=8, prefix_strokes=prefix,
                        generator=torch.Generator().manual_seed(0))
    for sketch in out.strokes:
        assert 3 <= len(sketch) <= 8
        for given, kept in zip(prefix, sketch[:3]):
            np.testing.assert_allclose(kept[[0, -1]], given[[0, -1]], atol=1e-3)
    # the official [xs, ys] layout works as well
    official = [[s[:, 0].tolist(), s[:, 1].tolist()] for s in prefix]
    again = tiny_pipeline(num_sketches=2, num_inference_steps=3, max_strokes=8, prefix_strokes=official,
                          generator=torch.Generator().manual_seed(0))
    assert sketches_equal(out.strokes, again.strokes)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_sketches": 0}, "num_sketches must be a positive integer"),
    ({"num_sketches": 2.5}, "num_sketches must be a positive integer"),
    ({"num_inference_steps": -1}, "num_inference_steps must be a positive integer"),
    ({"max_strokes": 0}, "max_strokes must be a positive integer"),
    ({"max_strokes": 99}, "exceeds the model's limit"),
    ({"temperature": 0}, "temperature must be a number > 0"),
    ({"prefix_strokes": "abc"}, "prefix_strokes must be a list"),
    ({"prefix_strokes": [[[1, 2, 3]]]}, r"prefix_strokes\[0\] must have shape"),
    ({"prefix_strokes": [np.array([[0, 0], [300, 10]])]}, r"prefix_strokes\[0\] has coordinates outside"),
    ({"prefix_strokes": [np.zeros((2, 2))] * 12}, "leaves none to draw"),
    ({"generator": 5}, "generator must be a torch.Generator"),
    ({"guidance_scale": -1.0}, "guidance_scale must be a number >= 0"),
    ({"guidance_scale": 2.0}, "needs a denoiser trained with context dropout"),
    ({"output_type": "latent"}, "output_type must be 'pil', 'np' or 'strokes'"),
    ({"stroke_format": "svg"}, "stroke_format must be 'simplified' or 'raw'"),
    ({"num_sketches": 10_001}, "more than 10000 in one call"),
    ({"num_sketches": 10**7}, "more than 10000 in one call"),
    ({"num_inference_steps": 5000}, "num_inference_steps=5000 exceeds"),
    ({"image_size": 100_000}, "image_size must be between 32 and 4096"),
    ({"image_size": 16}, "image_size must be between 32 and 4096"),
    ({"line_width": float("nan")}, "line_width must be a number > 0"),
    ({"line_width": 0}, "line_width must be a number > 0"),
    ({"line_width": 1e9}, "line_width=1000000000.0 is more than a quarter of image_size=256"),
])
def test_bad_arguments_say_what_is_wrong(tiny_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(**{"num_inference_steps": 2, **kwargs})


@pytest.mark.parametrize("layer, what", [("head_out", "denoised points"), ("stop_head", "stop probabilities")])
def test_non_finite_model_outputs_raise_instead_of_drawing(tiny_pipeline, layer, what):
    with torch.no_grad():
        getattr(tiny_pipeline.transformer, layer).bias.fill_(float("nan"))  # as corrupted weights would
    with pytest.raises(FloatingPointError, match=f"NaN or infinite {what}: its weights are likely corrupted"):
        tiny_pipeline(num_sketches=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0))


def test_guidance_zero_ignores_the_history_and_guidance_changes_strokes(guided_pipeline):
    pipe = guided_pipeline
    torch.manual_seed(1)
    histories = torch.rand(2, 3, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    contexts = pipe.transformer.encode_history(histories)[:, -1:]  # two different histories, (2, 1, D)

    def draw(context, scale):  # the same starting noise for every call
        return pipe.denoise_stroke(copy.deepcopy(pipe.scheduler), context, 4, scale, torch.Generator().manual_seed(0),
                                   1.0)[0]

    with torch.no_grad():
        (a0, b0), (a1, b1), (a3, b3) = [(draw(contexts[0], w), draw(contexts[1], w)) for w in (0.0, 1.0, 3.0)]
    torch.testing.assert_close(a0, b0)  # w = 0: the null context alone, whatever the history
    assert not torch.allclose(a1, b1)  # w = 1: each history gives its own stroke
    assert not torch.allclose(a3, a1) and not torch.allclose(b3, b1)  # guidance moves the strokes


def test_default_guidance_scale_is_saved_with_the_pipeline(tmp_path):
    pipe = make_tiny_pipeline(context_dropout=0.1)
    pipe.register_to_config(default_guidance_scale=2.5)
    pipe.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["default_guidance_scale"] == 2.5
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "p", trust_remote_code=True)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.default_guidance_scale == 2.5
    kwargs = dict(num_sketches=2, num_inference_steps=3, max_strokes=4)
    default = loaded(**kwargs, generator=torch.Generator().manual_seed(0)).strokes
    explicit = loaded(**kwargs, guidance_scale=2.5, generator=torch.Generator().manual_seed(0)).strokes
    unguided = loaded(**kwargs, guidance_scale=1.0, generator=torch.Generator().manual_seed(0)).strokes
    assert sketches_equal(default, explicit) and not sketches_equal(default, unguided)


def test_simplify_epsilon_is_saved_and_sets_how_much_detail_survives(tmp_path):
    tiny = make_tiny_pipeline(points_per_stroke=16)
    fine = StrokeDiffusionPipeline(transformer=tiny.transformer, scheduler=tiny.scheduler, simplify_epsilon=1.0)
    fine.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["simplify_epsilon"] == 1.0
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "p", trust_remote_code=True)
    coarse = StrokeDiffusionPipeline(transformer=tiny.transformer, scheduler=tiny.scheduler, simplify_epsilon=4.0)
    assert loaded.config.simplify_epsilon == 1.0

    def draw(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe(num_sketches=4, num_inference_steps=3, max_strokes=6, generator=torch.Generator().manual_seed(0)).strokes

    points = lambda sketches: sum(len(s) for sketch in sketches for s in sketch)  # noqa: E731
    assert sketches_equal(draw(loaded), draw(fine))
    assert points(draw(fine)) > points(draw(coarse))  # a lower tolerance keeps more of each stroke's vertices


def test_save_pretrained_writes_hub_layout(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "StrokeDiffusionPipeline"]
    assert index["transformer"] == ["modeling_stroke_diffusion", "StrokeDiffusionModel"]
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    files = {str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*") if p.is_file()}
    assert {"pipeline.py", "rendering.py", "representation.py", "transformer/modeling_stroke_diffusion.py",
            "transformer/diffusion_pytorch_model.safetensors", "transformer/config.json",
            "scheduler/scheduler_config.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)


FRESH_PROCESS = textwrap.dedent("""
    import sys, json, torch, numpy as np
    assert not any(p and 'pipeline' in __import__('os').listdir(p) for p in sys.path if __import__('os').path.isdir(p))
    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(num_sketches=3, num_inference_steps=4, max_strokes=5, generator=torch.Generator().manual_seed(0))
    print(json.dumps({"class": type(pipe).__name__, "model": type(pipe.transformer).__name__,
                      "strokes": [[s.tolist() for s in sk] for sk in out.strokes], "image": out.images[0].size}))
""")


def test_saved_folder_loads_in_fresh_offline_process_without_repo(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tmp_path / "saved", copy)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    result = subprocess.run([sys.executable, str(script), str(copy)], cwd=tmp_path / "elsewhere", env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "StrokeDiffusionPipeline" and loaded["model"] == "StrokeDiffusionModel"
    assert loaded["image"] == [256, 256]
    # the loaded copy draws exactly what the original draws
    here = tiny_pipeline(num_sketches=3, num_inference_steps=4, max_strokes=5, generator=torch.Generator().manual_seed(0))
    there = [[np.array(s, dtype=np.float32) for s in sk] for sk in loaded["strokes"]]
    assert len(there) == 3
    for a, b in zip(here.strokes, there):
        assert len(a) == len(b)
        for s, t in zip(a, b):
            np.testing.assert_allclose(s, t, atol=1e-4)


def test_conv_denoiser_blocks_are_saved_and_shape_the_output(tmp_path):
    pipe = make_tiny_pipeline(head_conv_blocks=1, head_conv_channels=4)
    model = pipe.transformer
    sample, t = torch.randn(3, TINY_MODEL["points_per_stroke"], 2), torch.tensor([10, 500, 990])
    context = torch.randn(3, TINY_MODEL["hidden_size"])
    out = model(sample, t, context)
    model.save_pretrained(tmp_path / "m")
    loaded = StrokeDiffusionModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.head_conv_blocks == 1 and loaded.config.head_conv_channels == 4
    torch.testing.assert_close(loaded(sample, t, context), out)
    with torch.no_grad():  # the convolution blocks are on the output path: silencing them changes the prediction
        model.conv_blocks[0].modulation.weight.zero_()
        model.conv_blocks[0].modulation.bias.zero_()
    assert not torch.allclose(model(sample, t, context), out)
    assert not any(name.startswith("conv") for name, _ in StrokeDiffusionModel(**TINY_MODEL).named_parameters())


def test_history_encoder_is_causal():
    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL).eval()
    strokes = torch.rand(2, 5, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    changed = strokes.clone()
    changed[:, 3:] = 0.5  # later strokes must not change earlier contexts
    a, b = model.encode_history(strokes), model.encode_history(changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_lcm_samples_the_distilled_transformer_and_other_schedulers_the_teacher():
    pipe = make_tiny_distilled_pipeline()
    kwargs = dict(num_sketches=2, max_strokes=4, generator=torch.Generator().manual_seed(0), return_trajectories=True)

    def broken(*args, **kwargs):
        raise AssertionError("the model of the other sampler was called")

    with mock.patch.object(pipe.transformer, "forward", broken), \
            mock.patch.object(pipe.transformer, "encode_history", broken):
        out = pipe(**kwargs)
    assert pipe.default_num_inference_steps == 1 and out.trajectories[0][0].shape[0] == 2
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    with mock.patch.object(pipe.distilled_transformer, "forward", broken), \
            mock.patch.object(pipe.distilled_transformer, "encode_history", broken):
        out = pipe(**kwargs)
    assert pipe.default_num_inference_steps == 10 and out.trajectories[0][0].shape[0] == 11


@pytest.mark.parametrize("change, message", [
    ({"distilled_transformer": None}, "LCMScheduler samples a distilled transformer and this pipeline has none"),
    ({"num_inference_steps": 11}, "exceeds the 10 steps the distilled transformer was distilled from"),
    ({"guidance_scale": 2.0}, "a distilled one never is"),
])
def test_distilled_sampling_refuses_what_it_cannot_do(change, message):
    pipe = make_tiny_distilled_pipeline()
    if "distilled_transformer" in change:
        pipe.register_modules(distilled_transformer=None)
    call = {k: v for k, v in change.items() if k != "distilled_transformer"}
    with pytest.raises(ValueError, match=message):
        pipe(num_sketches=1, max_strokes=3, **call)


def test_a_schedulers_misfit_names_the_distilled_alternative(tiny_pipeline):
    tiny_pipeline.scheduler = diffusers.HeunDiscreteScheduler.from_config(tiny_pipeline.scheduler.config)
    with pytest.raises(ValueError, match="a distilled transformer is sampled with LCMScheduler"):
        tiny_pipeline(num_sketches=1, num_inference_steps=2)


def test_distilled_pipeline_saves_and_loads_both_transformers(tmp_path):
    pipe = make_tiny_distilled_pipeline()
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["distilled_transformer"] == ["modeling_stroke_diffusion", "StrokeDiffusionModel"]
    assert index["scheduler"] == ["diffusers", "LCMScheduler"]
    assert (tmp_path / "p" / "distilled_transformer" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "p", trust_remote_code=True)
    loaded.set_progress_bar_config(disable=True)

    def draw(p):
        return p(num_sketches=3, max_strokes=5, generator=torch.Generator().manual_seed(0)).strokes

    assert sketches_equal(draw(loaded), draw(pipe))
    make_tiny_pipeline().save_pretrained(tmp_path / "plain")  # a folder without one loads with none
    assert DiffusionPipeline.from_pretrained(tmp_path / "plain", trust_remote_code=True).distilled_transformer is None


def test_distilled_mixed_precision_autocasts_the_distilled_sampler_only_where_bf16_is_native(tmp_path):
    pipe = make_tiny_distilled_pipeline()
    assert pipe.config.distilled_mixed_precision == "no" and pipe.autocast_dtype is None

    def draw(p):
        return p(num_sketches=4, max_strokes=5, generator=torch.Generator().manual_seed(0), output_type="strokes",
                 stroke_format="raw").strokes

    float32 = draw(pipe)
    pipe.register_to_config(distilled_mixed_precision="bf16")
    pipeline_module = sys.modules[type(pipe).__module__]
    with mock.patch.object(pipeline_module, "computes_bf16_natively", return_value=False):
        assert pipe.autocast_dtype is None and sketches_equal(draw(pipe), float32)
    with mock.patch.object(pipeline_module, "computes_bf16_natively", return_value=True):
        assert pipe.autocast_dtype is torch.bfloat16
        bf16 = draw(pipe)
        assert not sketches_equal(bf16, float32) and sketches_equal(draw(pipe), bf16)
        # under autocast the encoder and the denoiser see their rows padded to ROW_BUCKET; unpadded, the same sketches
        model, rows = pipe.distilled_transformer, []
        hook = model.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
        with mock.patch.object(model, "encode_history", wraps=model.encode_history) as encode:
            assert sketches_equal(draw(pipe), bf16)
            assert set(rows) == {len(c.args[0]) for c in encode.call_args_list} == {pipeline_module.ROW_BUCKET}
            rows.clear()
            with mock.patch.object(pipeline_module, "ROW_BUCKET", 1):
                assert sketches_equal(draw(pipe), bf16) and max(rows) == 4
        hook.remove()
        full = pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
        assert full.config.distilled_mixed_precision == "bf16" and full.autocast_dtype is None  # the teacher: float32
    pipe.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["distilled_mixed_precision"] == "bf16"
    with pytest.raises(ValueError, match="distilled_mixed_precision must be 'no' or 'bf16', got 'fp16'"):
        StrokeDiffusionPipeline(pipe.transformer, pipe.scheduler, pipe.distilled_transformer,
                                distilled_mixed_precision="fp16")


def test_incremental_history_encoding_with_a_cache_matches_the_full_pass():
    torch.manual_seed(0)
    model = StrokeDiffusionModel(**TINY_MODEL).eval()
    strokes = torch.rand(3, 4, TINY_MODEL["points_per_stroke"], 2) * 2 - 1
    full = model.encode_history(strokes)  # (3, 5, D)
    cache = []
    first = model.encode_history(strokes[:, :2], cache)  # the start token and two strokes at once
    torch.testing.assert_close(first, full[:, :3])
    torch.testing.assert_close(model.encode_history(strokes[:, 2:3], cache), full[:, 3:4])
    keep = torch.tensor([True, False, True])  # a sketch finished: its rows leave the cache
    cache = model.select_cache(cache, keep)
    torch.testing.assert_close(model.encode_history(strokes[keep, 3:4], cache), full[keep, 4:5])
    with pytest.raises(ValueError, match="one position at a time"):
        model.encode_history(strokes[keep, :2], cache)
    with pytest.raises(ValueError, match="at most 12"):
        model.encode_history(torch.zeros(1, 13, TINY_MODEL["points_per_stroke"], 2), [])


def test_concurrent_calls_on_one_pipeline_draw_what_each_would_alone():
    """The Space serves several visitors from one pipeline per category: calls running at once in threads must not
    share the scheduler's per-call state (DPM-Solver's step index failed with an IndexError before)."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = make_tiny_pipeline()
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

    def draw(seed):
        out = pipe(num_sketches=2, num_inference_steps=6, generator=torch.Generator().manual_seed(seed), output_type="np")
        return [[s.tolist() for s in sketch] for sketch in out.strokes]

    alone = {seed: draw(seed) for seed in range(4)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(draw, [seed % 4 for seed in range(16)]))
    assert together == [alone[seed % 4] for seed in range(16)]

