"""Training with several processes (torchrun over gloo on this CPU): the multi-GPU path is the same code."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, needs_shared, simplified_sample

TINY = ["--points-per-stroke", "8", "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
        "--head-hidden-size", "64", "--head-num-blocks", "1", "--history-attention-layers", "1",
        "--head-conv-blocks", "0", "--sample-interval", "0",
        "--dropout", "0"]  # dropout masks come from each process's own RNG: off, so that the runs can match


def train(tmp_path, out, processes, batch, *extra):
    command = [sys.executable, str(REPO / "train.py")] if processes == 1 else [
        shutil.which("torchrun") or "torchrun", "--standalone", "--nproc_per_node", str(processes),
        str(REPO / "train.py")]
    command += ["--category", "cat", "--data", str(simplified_sample("cat")), "--output-dir", str(tmp_path / out),
                "--cache-dir", str(tmp_path / "cache"), "--train-batch-size", str(batch), "--checkpointing-steps", "3",
                *TINY, *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (tmp_path / out / "logs" / "train_log.jsonl").read_text().splitlines()]


def weights(folder):
    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


@needs_shared
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun (installed with torch) is not on PATH")
def test_two_processes_train_checkpoint_resume_and_match_one_process(tmp_path):
    two = train(tmp_path, "two", 2, 4, "--max-steps", "4")
    one = train(tmp_path, "one", 1, 8, "--max-steps", "4")  # the same global batch of 8 sketches
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        assert a["loss"] == pytest.approx(b["loss"], rel=2e-3)
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(w1[k], w2[k], atol=2e-3) for k in w1)
    provenance = json.loads((tmp_path / "two" / "provenance.json").read_text())
    assert provenance["hardware"]["num_processes"] == 2
    checkpoint = tmp_path / "two" / "checkpoints" / "checkpoint-3"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in checkpoint.iterdir()}

    resumed = train(tmp_path, "two", 2, 4, "--max-steps", "6", "--resume-from-checkpoint", "latest")
    assert [r["step"] for r in resumed][-2:] == [5, 6]
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tmp_path / "two", trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert len(pipe(num_sketches=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).strokes) == 2
