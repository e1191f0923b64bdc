"""The parts of the benchmark scripts that decide what is measured."""

import sys

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from conftest import REPO, make_tiny_pipeline
from pipeline.representation import rdp_simplify, resample_stroke

sys.path.insert(0, str(REPO / "benchmarks"))
import representation_floor  # noqa: E402
import sampler_study  # noqa: E402
import teacher_forced  # noqa: E402


def test_sampler_study_setting_sets_scheduler_options_and_timestep_power():
    pipe = make_tiny_pipeline()
    call = sampler_study.configure(pipe, sampler_study.parse_setting("scheduler=dpm,scheduler.solver_order=3,"
                                                                     "num_inference_steps=4,guidance_scale=1.0"))
    assert call == {"num_inference_steps": 4, "guidance_scale": 1.0}
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler) and pipe.scheduler.config.solver_order == 3

    pipe = make_tiny_pipeline()
    setting = sampler_study.parse_setting("scheduler=dpm,timestep_power=2,num_inference_steps=4")
    call = sampler_study.configure(pipe, setting)
    pipe.scheduler.set_timesteps(call["num_inference_steps"])
    assert pipe.scheduler.timesteps.tolist() == [999, 562, 250, 62]  # 999 (1 - i / 4) ** 2
    sketches = pipe(num_sketches=2, generator=torch.Generator().manual_seed(0), max_strokes=3, **call).strokes
    assert len(sketches) == 2 and all(len(s) >= 1 for s in sketches)


def test_sampler_study_refuses_two_timestep_settings():
    setting = sampler_study.parse_setting("first_timestep=980,timestep_power=2")
    with pytest.raises(ValueError, match="first_timestep=980 and timestep_power=2"):
        sampler_study.configure(make_tiny_pipeline(), setting)


def test_restore_corners_puts_back_the_corners_that_equal_spacing_cuts():
    # an L of two 100 px sides: 32 equally spaced points miss the corner at (100, 0) by up to half a spacing
    polyline = np.array([[0, 0], [100, 0], [100, 100]], dtype=np.float32)
    points = resample_stroke(polyline, 32)  # spacing 200 / 31: the corner falls half-way between two points
    assert np.linalg.norm(points - [100, 0], axis=1).min() > 1.0
    cut = rdp_simplify(points, 2.0)
    assert len(cut) == 4  # RDP keeps both points beside the corner: a chamfer
    np.testing.assert_allclose(representation_floor.restore_corners(points, 2.0), polyline, atol=1e-3)
    # a shallow bend (about 6 degrees) is left where RDP put it
    shallow = resample_stroke(np.array([[0, 0], [100, 0], [200, 10]], dtype=np.float32), 32)
    np.testing.assert_array_equal(representation_floor.restore_corners(shallow, 0.5), rdp_simplify(shallow, 0.5))


def test_round_trip_long_strokes_keeps_short_strokes_as_drawn():
    short = np.array([[10, 10], [13, 14], [20, 12]], dtype=np.float32)  # 13 px
    long = np.array([[0, 0], [97, 3], [150, 100], [40, 200]], dtype=np.float32)
    out = representation_floor.round_trip_long_strokes([short, long], 128, points_per_stroke=32,
                                                       resampling="arc_length", epsilon=2.0)
    np.testing.assert_array_equal(out[0], short)
    assert len(out[1]) < 32 and np.abs(out[1][[0, -1]] - long[[0, -1]]).max() <= 0.5  # simplified, not re-fitted
    np.testing.assert_array_equal(out[1], np.round(out[1]))


def test_round_trip_smoothing_keeps_the_ends_and_cuts_the_corner_deeper():
    corner = np.array([[0, 0], [200, 0], [200, 200]], dtype=np.float32)
    options = dict(points_per_stroke=32, resampling="arc_length", epsilon=2.0, fit=False)
    plain = representation_floor.round_trip([corner], **options)[0]
    np.testing.assert_array_equal(plain, representation_floor.round_trip([corner], smoothing_passes=0, **options)[0])
    smoothed = representation_floor.round_trip([corner], smoothing_passes=1, **options)[0]
    np.testing.assert_array_equal(smoothed[[0, -1]], corner[[0, -1]])  # the ends stay
    distance_to_corner = lambda stroke: np.linalg.norm(stroke - [200, 0], axis=1).min()  # noqa: E731
    assert distance_to_corner(smoothed) > distance_to_corner(plain) > 0  # equal spacing cuts it, smoothing more


def _dpm_tiny_pipeline():
    pipe = make_tiny_pipeline()
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(  # as train.py saves it
        pipe.scheduler.config, prediction_type="v_prediction", timestep_spacing="trailing")
    return pipe


def test_teacher_forcing_denoises_from_the_first_sampler_step_at_or_below_the_start():
    pipe = _dpm_tiny_pipeline()
    real = torch.rand(3, 8, 2) * 2 - 1
    context = pipe.transformer.encode_history(real[None])[0, :3]
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(lambda module, args: seen.append(int(args[1])))
    redrawn = teacher_forced.redraw_from(pipe, real, context, 250, 4, torch.Generator().manual_seed(0))
    assert seen == [249]  # the 4 steps are 999, 749, 499, 249
    assert redrawn.shape == real.shape and not torch.equal(redrawn, real)
    seen.clear()
    assert torch.equal(teacher_forced.redraw_from(pipe, real, context, 200, 4, torch.Generator()), real)
    assert seen == []  # no step at or below 200: nothing to redraw
    hook.remove()


def test_teacher_forced_strokes_keep_each_drawings_strokes_and_read_only_the_strokes_before():
    pipe = _dpm_tiny_pipeline()
    square = np.array([[10, 10], [200, 10], [200, 200], [10, 200]], dtype=np.float32)
    sketches = [[square, square[:2] + 20, square[1:] - 5], [square[::-1], square[:3]]]

    def redraw(drawings, seed=0):
        return teacher_forced.teacher_forced_strokes(pipe, drawings, torch.Generator().manual_seed(seed), 999, 4)

    redrawn, kept = redraw(sketches)
    assert kept.tolist() == [0, 1] and [len(s) for s in redrawn] == [3, 2]
    again, _ = redraw(sketches)
    assert all(np.array_equal(a, b) for s, t in zip(redrawn, again) for a, b in zip(s, t))  # same seed, same strokes
    changed, _ = redraw([sketches[0][:2] + [square[:2]], sketches[1]])  # only the last stroke of the first drawing
    for before, after in zip(redrawn[0][:2] + redrawn[1], changed[0][:2] + changed[1]):
        np.testing.assert_array_equal(before, after)  # no stroke reads the strokes after it
    other_seed, _ = redraw(sketches, seed=1)
    assert not np.array_equal(redrawn[0][0], other_seed[0][0])
