"""How well a distilled student generalises: its one-step error on teacher paths it never trained on.

    python benchmarks/distill_heldout_error.py --model models/rabbit [--student outputs/rabbit-distilled]

The teacher (``--model``'s ``transformer`` under its 10 DPM-Solver++ steps) draws ``--sketches`` new sketches with
``--seed`` (not distill.py's seed), and records the denoising path of each of their strokes. For every point of the
path the script prints the student's mean squared error (normalised units) of the jump to the path's end, and the
mixture distill.py trains on (``--first-step-fraction`` of the points at the first timestep, the rest uniform),
comparable with the last loss in the student's ``logs/distill_log.jsonl``. A held-out error well above the training
loss means the student learnt its training paths rather than the teacher's map: more paths, not more steps.
"""

import argparse
from pathlib import Path

import torch
from common import machine

from sketch_diffusion.distillation import (consistency_loss, lcm_scheduler, load_teacher, teacher_sketches,
                                           teacher_timesteps, teacher_trajectories)
from sketch_diffusion.settings import pipeline_folder, positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=pipeline_folder,
                        help="distilled pipeline folder: its transformer is the teacher")
    parser.add_argument("--student", default=None, type=pipeline_folder,
                        help="folder whose distilled_transformer to score (default: --model)")
    parser.add_argument("--sketches", type=positive_int, default=1000)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--first-step-fraction", type=float, default=0.7)
    args = parser.parse_args()
    from diffusers import DiffusionPipeline

    teacher = load_teacher(Path(args.model))
    student = DiffusionPipeline.from_pretrained(args.student or args.model, trust_remote_code=True)
    autocast = student.autocast_dtype  # the student's sampling precision on this machine
    student = student.distilled_transformer.eval()
    scheduler, timesteps = lcm_scheduler(teacher.scheduler.config), teacher_timesteps(teacher)
    generator = torch.Generator().manual_seed(args.seed)
    strokes, lengths = teacher_sketches(teacher, args.sketches, generator)
    contexts, paths = teacher_trajectories(teacher, strokes, lengths, generator)
    errors = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast is not None):
        for point, t in enumerate(timesteps):
            errors.append(consistency_loss(student, scheduler, paths[point], t.repeat(len(contexts)), contexts,
                                           paths[-1].clamp(-1.0, 1.0)).item())
    print(f"machine: {machine()}; {len(contexts):,} held-out strokes of {args.sketches:,} sketches (seed {args.seed})")
    for t, error in zip(timesteps.tolist(), errors):
        print(f"timestep {t:4d}: {error:.6f}")
    mixture = args.first_step_fraction * errors[0] + (1 - args.first_step_fraction) * sum(errors) / len(errors)
    print(f"training mixture ({args.first_step_fraction:g} at the first timestep): {mixture:.6f}")


if __name__ == "__main__":
    main()
