"""Settings shared by training, evaluation and the benchmarks, each written once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each flag's default, except where there is none to show (``None``, ``False``) or the help
    text already says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def default_cache_dir() -> Path:
    """Cache of Arrow datasets, Inception weights and features: ``$SKETCH_DIFFUSION_CACHE`` or
    ``~/.cache/sketch_diffusion``."""
    return Path(os.environ.get("SKETCH_DIFFUSION_CACHE", Path.home() / ".cache" / "sketch_diffusion"))


def positive_int(text: str) -> int:
    """argparse ``type`` of a count that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_pipeline_folder(path) -> Path:
    """``path`` as a Path if it is a saved pipeline folder (holds ``model_index.json``), else FileNotFoundError."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{path} is not a pipeline folder (no model_index.json)")
    return path


def pipeline_folder(text: str) -> str:
    """argparse ``type`` of a saved pipeline folder (one with ``model_index.json``)."""
    try:
        check_pipeline_folder(text)
    except FileNotFoundError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# How drawings are rendered for FID/KID: Inception's input size, line width in output pixels.
METRIC_RENDER = {"size": 299, "line_width": 3.0}

# Sampling schedulers by the short names the command lines take.
SAMPLING_SCHEDULERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "dpm": "DPMSolverMultistepScheduler"}


def scheduler_class(name: str):
    """The diffusers scheduler class for a short name of ``SAMPLING_SCHEDULERS``."""
    import diffusers

    if name not in SAMPLING_SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SAMPLING_SCHEDULERS)}")
    return getattr(diffusers, SAMPLING_SCHEDULERS[name])
