import functools
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import REPO, SKETCHRNN_RABBIT, needs_shared, simplified_sample, sketches_equal
from sketch_diffusion.data import load_strokes, read_drawings, stroke_statistics
from sketch_diffusion.sketch_rnn import PretrainedSketchRNN, sample_stroke5, write_standin_corpus

needs_model = pytest.mark.skipif(not SKETCHRNN_RABBIT.is_file(), reason="rabbit.gen.json lives in ../shared")


@pytest.fixture(scope="module")
def rabbit():
    if not SKETCHRNN_RABBIT.is_file():
        pytest.skip("rabbit.gen.json lives in ../shared")
    return PretrainedSketchRNN(SKETCHRNN_RABBIT)


@needs_model
def test_loads_weights_with_documented_shapes(rabbit):
    assert rabbit.w_out.shape == (512, 123) and rabbit.w_xh.shape == (5, 2048) and rabbit.w_hh.shape == (512, 2048)
    assert rabbit.max_seq_len == 155 and rabbit.scale_factor == pytest.approx(61.0124)
    assert float(rabbit.w_hh.abs().max()) <= 10.0 + 1e-6  # int16 * 10 / 32767


@needs_model
def test_samples_end_and_look_like_real_rabbits(rabbit):
    stroke5, ended = sample_stroke5(rabbit.step, 200, rabbit.max_seq_len, 0.65, torch.Generator().manual_seed(0))
    assert stroke5.shape == (200, 155, 5)
    assert ended.float().mean() > 0.8  # most samples reach the end-of-sketch state (89.5% with this seed)
    np.testing.assert_array_equal(stroke5[:, :, 2:].sum(-1).numpy(), 1.0)
    sketches = rabbit.sample(200, seed=0, batch_size=200, progress=False)
    real = load_strokes(simplified_sample("rabbit"))
    fake_stats, real_stats = stroke_statistics(sketches), stroke_statistics(real)
    spp = fake_stats["strokes_per_sketch"]
    assert 3 <= np.median(spp) <= 12  # real rabbits here: 1-12 strokes, median 6
    assert np.quantile(spp, 0.05) >= 1 and np.quantile(spp, 0.95) <= 25
    offsets = []
    for sketch in sketches:  # official canvas: longer side 255, top-left aligned, integers
        pts = np.concatenate(sketch)
        assert pts.min() >= 0 and pts.max() <= 255 and np.allclose(pts, np.round(pts))
        assert pts.max(0).max() >= 253
        offsets.append(pts.min(0).max())
    # aligned before RDP, which (as in the official files) may drop an extreme point
    assert np.mean(np.array(offsets) <= 2) > 0.9
    assert real_stats["extent"].max() == 255


@needs_model
def test_sampling_is_deterministic_per_seed(rabbit):
    a = rabbit.sample(20, seed=3, batch_size=20, progress=False)
    b = rabbit.sample(20, seed=3, batch_size=20, progress=False)
    c = rabbit.sample(20, seed=4, batch_size=20, progress=False)
    assert sketches_equal(a, b) and not sketches_equal(a, c)


@needs_model
def test_standin_corpus_is_marked_synthetic_with_a_split(rabbit, tmp_path, monkeypatch):
    monkeypatch.setattr(rabbit, "sample", functools.partial(rabbit.sample, batch_size=40))  # not 1,000 for 30
    out, split_path = write_standin_corpus(rabbit, 30, tmp_path / "rabbit_sketchrnn.ndjson", seed=0, num_test=10)
    records = list(read_drawings(out, kind="simplified"))
    assert len(records) == 30
    assert all(r["countrycode"] == "ZZ" and r["source"].startswith("sketch-rnn:rabbit.gen.json") for r in records)
    assert "temperature=0.65" in records[0]["source"]
    split = json.loads(split_path.read_text())
    assert split == {"train": list(range(20)), "test": list(range(20, 30))}


def test_bad_model_file_is_named(tmp_path):
    path = tmp_path / "x.gen.json"
    path.write_text('{"not": "a model"}')
    with pytest.raises(ValueError, match="x.gen.json"):
        PretrainedSketchRNN(path)


@needs_shared
def test_baseline_trains_and_samples(tmp_path):
    import train_sketch_rnn
    from sketch_diffusion.modeling_sketch_rnn import SketchRNNDecoder
    from sketch_diffusion.sketch_rnn import sample_baseline

    train_sketch_rnn.main(["--category", "rabbit", "--data", str(simplified_sample("rabbit")), "--output-dir",
                           str(tmp_path / "b"), "--max-steps", "25", "--hidden-size", "32", "--train-batch-size", "8",
                           "--cache-dir", str(tmp_path / "c")])
    log = [json.loads(x) for x in (tmp_path / "b" / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 25 and log[-1]["loss"] < log[0]["loss"]
    model = SketchRNNDecoder.from_pretrained(tmp_path / "b")
    assert model.config.scale_factor > 1  # offsets normalised by their std in pixels
    out = sample_baseline(tmp_path / "b", 5, tmp_path / "s.ndjson", seed=0, word="rabbit")
    records = list(read_drawings(out))
    assert len(records) == 5 and all(r["word"] == "rabbit" and r["countrycode"] == "ZZ" for r in records)


@needs_shared
def test_baseline_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    import train_sketch_rnn
    from safetensors.torch import load_file

    def train(folder, *extra):
        train_sketch_rnn.main(["--category", "rabbit", "--data", str(simplified_sample("rabbit")), "--output-dir",
                               str(tmp_path / folder), "--hidden-size", "16", "--num-mixtures", "3",
                               "--train-batch-size", "4", "--dropout", "0.2", "--cache-dir", str(tmp_path / "c"), *extra])
        return load_file(next((tmp_path / folder).glob("*.safetensors")))

    straight = train("straight", "--max-steps", "8")
    train("resumed", "--max-steps", "5", "--checkpointing-steps", "2")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "checkpoint-5")  # as if killed after step 5: checkpoint-4
    resumed = train("resumed", "--max-steps", "8", "--checkpointing-steps", "2", "--resume-from-checkpoint", "latest")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    log = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 9))
    with pytest.raises(ValueError, match="holds checkpoints of an earlier run"):
        train("resumed", "--max-steps", "8")


def test_kept_baseline_loads_and_draws_like_its_recorded_run():
    """The baseline the speed benchmark times against (benchmarks/baselines): its safetensors load, and it draws
    finished sketches of about the 9.4 strokes its 17,631-step run drew, the same ones for a seed."""
    from sketch_diffusion.modeling_sketch_rnn import SketchRNNDecoder
    from sketch_diffusion.sketch_rnn import sample_sketches

    folder = REPO / "benchmarks" / "baselines" / "rabbit_sketchrnn_40min"
    assert json.loads((folder / "provenance.json").read_text())["steps"] == 17631
    model = SketchRNNDecoder.from_pretrained(folder).eval()

    def draw(seed):
        with torch.no_grad():
            return sample_sketches(model.step, 200, model.config.max_seq_len, model.config.scale_factor, seed=seed,
                                   batch_size=200, progress=False)

    a, b = draw(0), draw(0)
    assert 7.5 <= np.mean([len(s) for s in a]) <= 11.5
    assert sketches_equal(a, b)


def test_a_model_file_that_cannot_end_a_sketch_is_named_not_a_hang(tmp_path):
    from sketch_diffusion.sketch_rnn import sample_sketches

    bad = tmp_path / "short.gen.json"
    bad.write_text(json.dumps([{"mode": 2, "max_seq_len": 1, "scale_factor": 1.0}, [[1]] * 5, [""] * 5]))
    with pytest.raises(ValueError, match="short.gen.json"):
        PretrainedSketchRNN(bad)

    def never_lifts_the_pen(x, state):  # pen logits: always "down", never "end"; one mixture component
        y = torch.zeros(x.shape[0], 3 + 6)
        y[:, 0] = 50.0
        return y, (torch.zeros(x.shape[0], 1),)

    with pytest.raises(ValueError, match="rarely ends a sketch within 4 points"):
        sample_sketches(never_lifts_the_pen, 2, 4, 1.0, batch_size=2, progress=False)


@pytest.mark.parametrize("extra, message", [
    (["--learning-rate", "0"], "--learning-rate must be a finite number > 0, got 0.0"),
    (["--max-grad-norm", "0"], "--max-grad-norm must be a finite number > 0, got 0.0"),
    (["--lr-decay", "1.5"], "--lr-decay must be a finite number in (0, 1], got 1.5"),
    (["--dropout", "1"], "--dropout must be a finite number in [0, 1), got 1.0"),
    (["--max-train-minutes", "-1"], "--max-train-minutes must be a finite number > 0, got -1.0"),
])
def test_bad_sketch_rnn_training_flags_are_named(tmp_path, capsys, extra, message):
    import train_sketch_rnn

    with pytest.raises(SystemExit):
        train_sketch_rnn.parse_args(["--category", "rabbit", "--output-dir", str(tmp_path), *extra])
    assert message in capsys.readouterr().err
