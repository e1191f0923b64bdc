"""A staged Hub release loads offline in a fresh process and carries a valid card."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO, make_tiny_distilled_pipeline, make_tiny_pipeline, needs_shared, simplified_sample
from test_train import train_here


@needs_shared
def test_staged_release_loads_offline_and_card_validates(tmp_path, metrics_cache):
    import evaluate
    from huggingface_hub import ModelCard

    from sketch_diffusion.release import main as release_main

    train_here(tmp_path / "m", "--max-steps", "3", "--augment", "1.0", "--validation-size", "5")
    split = tmp_path / "split.json"  # 5 test drawings, all in train: 10 Inception passes, one FID (no leak-free set)
    split.write_text(json.dumps({"train": list(range(25)), "test": list(range(20, 25))}))
    evaluate.main(["--model", str(tmp_path / "m"), "--category", "cat", "--data", str(simplified_sample("cat")),
                   "--split", str(split), "--out", str(tmp_path / "m" / "metrics.json"), "--render-size", "96",
                   "--num-inference-steps", "3", "--cache-dir", str(metrics_cache)])
    staged = tmp_path / "staged"
    assert release_main(["--model", str(tmp_path / "m"), "--repo-id", "someone/cat-demo", "--staging-dir", str(staged)]) == 0
    names = {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()}
    assert {"README.md", "metrics.json", "sample.gif", "pipeline.py", "model_index.json",
            "transformer/diffusion_pytorch_model.safetensors"} <= names
    assert not any(n.startswith(("checkpoints", "logs", "samples")) for n in names)

    card = ModelCard.load(staged / "README.md")
    assert card.data.library_name == "diffusers" and card.data.license == "cc-by-4.0"
    metrics = json.loads((staged / "metrics.json").read_text())
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"fid": round(metrics["fid"], 4), "kid": round(metrics["kid_mean"], 4)}
    assert "Trained on only 20 real drawings" in card.text.split("## Usage")[0]  # said in the first lines
    assert "20 of 25 train drawings used (5 held out for the validation loss)" in card.text
    assert "demo" in card.data.tags
    assert "then 2 residual convolution blocks along them" in card.text  # the denoiser train.py's defaults build
    assert f"{metrics['fid']:.2f}" in card.text and "real test drawings and 5 generated sketches" in card.text

    script = ("import sys, torch; from diffusers import DiffusionPipeline;"
              "p = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True);"
              "print(len(p(num_sketches=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).strokes))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script, str(staged)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2"

    push = subprocess.run([sys.executable, "-m", "sketch_diffusion.release", "--model", str(tmp_path / "m"), "--repo-id",
                           "someone/cat-demo", "--staging-dir", str(staged), "--push"], cwd=REPO,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=300)
    assert push.returncode != 0 and "HF_HUB_OFFLINE" in push.stderr
    assert (staged / "model_index.json").is_file()  # the staged folder stays usable


def test_refresh_code_rewrites_stale_code_and_refuses_a_change_in_what_it_draws(tmp_path):
    from sketch_diffusion.release import refresh_code

    folder = tmp_path / "m"
    make_tiny_pipeline().save_pretrained(folder)
    current = (folder / "pipeline.py").read_text()
    (folder / "pipeline.py").write_text(current + "\n# an older release\n")
    config_file = folder / "transformer" / "config.json"
    config = json.loads(config_file.read_text())
    stale = {k: v for k, v in config.items() if k != "head_conv_channels"}  # an option added later ...
    stale["resampling"] = "arc_length"  # ... and one since removed, which loading warns about
    config_file.write_text(json.dumps(stale))
    weights = (folder / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()

    assert refresh_code(folder) == ["pipeline.py", "transformer/config.json"]
    assert (folder / "pipeline.py").read_text() == current
    assert json.loads(config_file.read_text()) == config  # the new option with its default, the old one gone
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == weights
    assert refresh_code(folder) == []

    changed = current.replace("temperature: float = 1.0,", "temperature: float = 1.5,")
    assert changed != current
    (folder / "pipeline.py").write_text(changed)  # a release whose own code draws differently is left alone
    with pytest.raises(ValueError, match="draws other sketches than the folder's own; not refreshed"):
        refresh_code(folder)
    assert (folder / "pipeline.py").read_text() == changed


def released_folder(folder):
    """A tiny pipeline folder with the shipped cat's provenance, training config and metrics (recorded for the tiny
    folder's weights)."""
    from sketch_diffusion.provenance import weights_sha256

    make_tiny_pipeline().save_pretrained(folder)
    for name in ("provenance.json", "training_config.json"):
        shutil.copyfile(REPO / "models" / "cat" / name, folder / name)
    metrics = json.loads((REPO / "models" / "cat" / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "weights_sha256": weights_sha256(folder)}))
    for name in ("checkpoints", "logs", "samples"):
        (folder / name).mkdir()
        (folder / name / "keep.txt").write_text(name)
    return folder


@pytest.mark.parametrize("where", ["user_folder", "model_folder", "inside_model", "parent_of_model"])
def test_staging_never_deletes_what_it_did_not_stage(tmp_path, where, capsys):
    from sketch_diffusion.release import main as release_main

    model = released_folder(tmp_path / "work" / "m")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("months of work")
    staging = {"user_folder": user, "model_folder": model, "inside_model": model / "logs",
               "parent_of_model": tmp_path / "work"}[where]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert release_main(["--model", str(model), "--repo-id", "you/cat", "--staging-dir", str(staging)]) == 1
    assert "--staging-dir" in capsys.readouterr().err
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert (user / "thesis.tex").read_text() == "months of work"


def test_a_repo_id_that_climbs_out_of_the_staging_root_is_refused(tmp_path, monkeypatch, capsys):
    from sketch_diffusion.release import main as release_main

    model = released_folder(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "run.txt").write_text("a training run")
    assert release_main(["--model", str(model), "--repo-id", "you/..", "--staging-dir", str(tmp_path / "s")]) == 1
    assert release_main(["--model", str(model), "--repo-id", "you/.."]) == 1
    assert "not a valid Hub repository id" in capsys.readouterr().err
    assert (tmp_path / "outputs" / "run.txt").read_text() == "a training run"


def test_staging_twice_replaces_the_earlier_staging(tmp_path):
    from sketch_diffusion.release import stage

    model = released_folder(tmp_path / "m")
    first = stage(model, tmp_path / "s", "you/cat")
    (tmp_path / "s" / "leftover.txt").write_text("from an earlier release")
    assert stage(model, tmp_path / "s", "you/cat") == first
    assert not (tmp_path / "s" / "leftover.txt").exists()
    assert not any(p.name.startswith(("checkpoints", "logs", "samples")) for p in first)


def test_distilling_a_folder_makes_its_metrics_stale(tmp_path):
    """Metrics of the full sampler do not describe a folder that samples a distilled transformer by default."""
    from sketch_diffusion.provenance import weights_sha256
    from sketch_diffusion.release import load_metrics

    model = released_folder(tmp_path / "m")
    assert load_metrics(model)["weights_sha256"] == weights_sha256(model)
    make_tiny_distilled_pipeline().distilled_transformer.save_pretrained(model / "distilled_transformer")
    with pytest.raises(ValueError, match="computed for other weights"):
        load_metrics(model)


def test_metrics_of_earlier_weights_are_never_released(tmp_path):
    """Retraining into a folder leaves the old metrics.json; the card must not put its FID beside the new weights."""
    from sketch_diffusion.provenance import weights_sha256
    from sketch_diffusion.release import build_model_card, stage

    model = released_folder(tmp_path / "m")
    torch.manual_seed(1)
    retrained = make_tiny_pipeline()
    for p in retrained.transformer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    retrained.save_pretrained(model)
    provenance = json.loads((model / "provenance.json").read_text())
    (model / "provenance.json").write_text(json.dumps(dict(provenance, date="2026-12-01T00:00:00Z")))
    with pytest.raises(ValueError, match="metrics.json was computed for other weights"):
        stage(model, tmp_path / "s", "you/cat")
    assert not (tmp_path / "s").exists()

    metrics = json.loads((model / "metrics.json").read_text())
    (model / "metrics.json").write_text(json.dumps(dict(metrics, weights_sha256="0" * 64, date="2026-12-02")))
    with pytest.raises(ValueError, match="other weights"):  # the recorded hash wins over the date
        build_model_card(model)
    (model / "metrics.json").write_text(json.dumps(dict(metrics, weights_sha256=weights_sha256(model))))
    assert f"{metrics['fid']:.2f}" in build_model_card(model).text


@pytest.mark.parametrize("name, content, message", [
    ("metrics.json", "{not json", "metrics.json is not valid JSON"),
    ("metrics.json", '{"weights_sha256": "WEIGHTS"}', "metrics.json is not evaluate.py's output"),
    ("provenance.json", "[]", "provenance.json should hold a JSON object, not a list"),
])
def test_a_damaged_record_in_the_folder_is_named(tmp_path, name, content, message):
    from sketch_diffusion.provenance import weights_sha256
    from sketch_diffusion.release import load_metrics

    model = released_folder(tmp_path / "m")
    (model / name).write_text(content.replace("WEIGHTS", weights_sha256(model)))
    with pytest.raises(ValueError, match=message):
        load_metrics(model)
