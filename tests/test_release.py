"""A staged Hub release loads offline in a fresh process and carries a valid card."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, make_tiny_pipeline, needs_shared, simplified_sample
from test_train import run_train


@needs_shared
def test_staged_release_loads_offline_and_card_validates(tmp_path):
    from huggingface_hub import ModelCard

    from pipeline.release import main as release_main

    run_train(tmp_path, "m", "--max-steps", "3", "--augment", "1.0", "--validation-size", "5", "--smoothing-passes", "1")
    data = str(simplified_sample("cat"))
    evaluate = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--model", str(tmp_path / "m"), "--category",
                               "cat", "--data", data, "--out", str(tmp_path / "m" / "metrics.json"), "--render-size", "96",
                               "--num-inference-steps", "3", "--cache-dir", str(tmp_path / "c")],
                              capture_output=True, text=True, timeout=600)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
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
    assert "smoothed along its points (1 pass\nof a [1, 2, 1] / 4 filter" in card.text  # the saved smoothing

    script = ("import sys, torch; from diffusers import DiffusionPipeline;"
              "p = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True);"
              "print(len(p(num_sketches=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).strokes))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script, str(staged)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2"

    push = subprocess.run([sys.executable, "-m", "pipeline.release", "--model", str(tmp_path / "m"), "--repo-id",
                           "someone/cat-demo", "--staging-dir", str(staged), "--push"], cwd=REPO,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=300)
    assert push.returncode != 0 and "HF_HUB_OFFLINE" in push.stderr
    assert (staged / "model_index.json").is_file()  # the staged folder stays usable


def test_refresh_code_rewrites_stale_code_and_refuses_a_change_in_what_it_draws(tmp_path):
    from pipeline.release import refresh_code

    folder = tmp_path / "m"
    make_tiny_pipeline().save_pretrained(folder)
    current = (folder / "pipeline.py").read_text()
    (folder / "pipeline.py").write_text(current + "\n# an older release\n")
    config_file = folder / "transformer" / "config.json"
    config = json.loads(config_file.read_text())
    stale = {k: v for k, v in config.items() if k != "resampling"}  # an option added later ...
    stale["keep_vertices"] = False  # ... and one since renamed, which loading warns about
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
