"""The pipelines shipped in models/ are complete Hub folders: safetensors only, a card, metrics, and they sample."""

import json
import math

import pytest
import torch

from conftest import REPO

CATEGORIES = ("cat", "bus", "rabbit")


@pytest.mark.parametrize("category", CATEGORIES)
def test_shipped_folder_is_complete(category):
    folder = REPO / "models" / category
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "checkpoints" not in p.parts}
    assert {"model_index.json", "pipeline.py", "README.md", "metrics.json", "provenance.json", "training_config.json",
            "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
            "distilled_transformer/config.json", "distilled_transformer/diffusion_pytorch_model.safetensors",
            "distillation_config.json", "scheduler/scheduler_config.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], "pickled weights shipped"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["category"] == category and math.isfinite(metrics["fid"]) and metrics["num_generated"] > 0
    provenance = json.loads((folder / "provenance.json").read_text())
    card = (folder / "README.md").read_text()
    assert f"{metrics['fid']:.2f}" in card  # the card reports this folder's own metrics
    assert metrics["sampling"]["scheduler"] == "LCMScheduler" and metrics["sampling"]["num_inference_steps"] == 1
    assert "distilled" in card.split("## Training data")[0]  # the card says how it samples by default
    distillation = json.loads((folder / "distillation_config.json").read_text())
    index = json.loads((folder / "model_index.json").read_text())
    assert index["distilled_mixed_precision"] == ("bf16" if distillation["mixed_precision"] == "bf16" else "no")
    if not provenance["data_file"].get("official"):  # says in its opening lines what it was trained on
        assert "SYNTHETIC" in card.split("## Usage")[0] or "real drawings" in card.split("## Usage")[0]


@pytest.mark.parametrize("category", CATEGORIES)
def test_shipped_code_is_this_checkouts_code(category):
    folder = REPO / "models" / category
    for shipped, source in [("pipeline.py", "pipeline_stroke_diffusion.py"), ("representation.py", "representation.py"),
                            ("rendering.py", "rendering.py"),
                            ("transformer/modeling_stroke_diffusion.py", "modeling_stroke_diffusion.py"),
                            ("distilled_transformer/modeling_stroke_diffusion.py", "modeling_stroke_diffusion.py")]:
        assert (folder / shipped).read_bytes() == (REPO / "pipeline" / source).read_bytes(), (
            f"models/{category}/{shipped} is stale: run python -m sketch_diffusion.release --model models/{category} --refresh-code")


@pytest.mark.parametrize("category", CATEGORIES)
def test_shipped_pipeline_loads_and_samples_deterministically(category, monkeypatch):
    from diffusers import DiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = DiffusionPipeline.from_pretrained(REPO / "models" / category, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "StrokeDiffusionPipeline" and type(pipe.scheduler).__name__ == "LCMScheduler"

    def draw():
        return pipe(num_sketches=2, max_strokes=4, output_type="np", generator=torch.Generator().manual_seed(0)).strokes

    first, second = draw(), draw()
    assert [len(s) for s in first] == [len(s) for s in second] and all(1 <= len(s) <= 4 for s in first)
    for a, b in zip(first, second):
        for sa, sb in zip(a, b):
            assert sa.shape[1] == 2 and (sa == sb).all()
            assert sa.min() >= 0 and sa.max() <= 255
