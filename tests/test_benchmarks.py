"""The parts of the benchmark scripts that decide what is measured."""

import sys

import torch
from diffusers import DPMSolverMultistepScheduler

from conftest import REPO, make_tiny_pipeline

sys.path.insert(0, str(REPO / "benchmarks"))
import sampler_study  # noqa: E402


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
