"""Distil a trained pipeline's stroke denoiser into a few-step one (LCMScheduler), the sampler shipped models use.

    python distill.py --model models/rabbit          # adds models/rabbit/distilled_transformer, LCMScheduler default
    python distill.py --model models/cat --output-dir outputs/cat-distilled

The teacher draws strokes of its own sketches and of its training drawings (read with the folder's
``training_config.json``) with its 10 DPM-Solver++ steps; a copy of it, encoder frozen, learns to jump from any point of
those trajectories to their end, then to fool a discriminator of the training drawings' real strokes. The
trajectories are cached and checkpoints kept in ``--work-dir``; an interrupted run resumes from its latest checkpoint.
The folder's ``metrics.json`` no longer matches its weights afterwards: run ``evaluate.py`` again. See
``sketch_diffusion.distillation``.
"""

from __future__ import annotations

import logging
import sys

from sketch_diffusion.distillation import distill, parse_args


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = distill(parse_args(argv, description=__doc__.split("\n")[0]))
    print(f"distilled pipeline written to {folder}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, FloatingPointError) as exc:
        logging.getLogger("distill").error("%s", exc)
        sys.exit(1)
