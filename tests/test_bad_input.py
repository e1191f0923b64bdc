"""Probes of bad input, by entry point: each names the input and what is wrong, and writes nothing it cannot stand
behind. (The Space's and the release tool's probes are in test_app.py and test_release.py.)"""

import dataclasses
import gzip
import json

import numpy as np
import pytest
import torch

from conftest import make_tiny_pipeline, needs_shared, raw_sample, simplified_sample

# ----------------------------------------------------------------------------- data files


@needs_shared
def test_raw_files_are_brought_to_the_simplified_canvas():
    """The official raw files are in the drawing's own pixels; read as the 0..255 canvas they scored FID 374."""
    from pipeline.rendering import render_image
    from sketch_diffusion.data import load_strokes

    raw, simplified = load_strokes(raw_sample("cat")), load_strokes(simplified_sample("cat"))  # the same 25 drawings
    for a, b in zip(raw, simplified):
        points = np.concatenate(a)
        assert points.min() >= 0 and points.max() <= 255 and np.all(points == np.round(points))
        difference = np.abs(np.asarray(render_image(a, size=64), float) - np.asarray(render_image(b, size=64), float))
        assert difference.mean() < 3  # of 255: the official simplification, up to its resampling before RDP


@needs_shared
def test_a_file_with_the_official_line_count_is_not_taken_for_the_official_file(monkeypatch):
    from sketch_diffusion import download
    from sketch_diffusion.data import resolve_split

    fake = dataclasses.replace(download.OFFICIAL_FILES["cat"], num_drawings=25)  # the sample has 25 lines
    monkeypatch.setitem(download.OFFICIAL_FILES, "cat", fake)
    split, source = resolve_split(simplified_sample("cat"), "cat")
    assert source == "all lines of the file as train" and split["test"] == []
    with pytest.raises(ValueError, match="is not the official cat file"):
        resolve_split(simplified_sample("cat"), "cat", "official")


@needs_shared
def test_the_official_file_by_content_gets_the_official_split_by_default(monkeypatch):
    from sketch_diffusion import download
    from sketch_diffusion.data import official_split, resolve_split
    from sketch_diffusion.fileio import git_blob_sha1

    sample = simplified_sample("cat")  # stands in for the official file: same content hash, same line count
    fake = dataclasses.replace(download.OFFICIAL_FILES["cat"], num_drawings=25, git_blob_sha1=git_blob_sha1(sample))
    monkeypatch.setitem(download.OFFICIAL_FILES, "cat", fake)
    for split_arg in (None, "official"):
        split, source = resolve_split(sample, "cat", split_arg)
        assert source.startswith("official cat split") and split == official_split("cat")


@needs_shared
def test_drawings_of_another_category_are_refused_by_name(tmp_path):
    from sketch_diffusion.data import load_split_sketches

    lines = gzip.open(simplified_sample("cat"), "rt").read().splitlines()
    airplanes = tmp_path / "airplane.ndjson"
    airplanes.write_text("".join(json.dumps(dict(json.loads(line), word="airplane")) + "\n" for line in lines))
    split = {"train": list(range(20)), "test": list(range(20, 25))}
    with pytest.raises(ValueError, match="holds drawings of 'airplane', none of 'cat'"):
        load_split_sketches(airplanes, split, tmp_path / "cache", word="cat")
    assert len(load_split_sketches(airplanes, split, tmp_path / "cache", word="airplane")["train"]) == 20


def test_skipped_records_are_counted_by_what_is_wrong(tmp_path):
    from sketch_diffusion.data import ReadReport, read_drawings

    good = {"word": "cat", "countrycode": "US", "timestamp": "t", "recognized": True, "key_id": "1",
            "drawing": [[[0, 10], [0, 10]]]}
    bad_second_stroke = dict(good, drawing=[[[0, 10], [0, 10]], [[0, 300], [0, 1]]])
    path = tmp_path / "f.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in (good, bad_second_stroke, good)) + "\n")
    report = ReadReport()
    assert len(list(read_drawings(path, errors="skip", report=report))) == 2
    assert report.skipped_reasons == {"stroke: x outside 0..255": 1}
    with pytest.raises(ValueError, match=r"f.ndjson, line 2 \(index 1\): stroke 1: x outside 0..255"):
        list(read_drawings(path))


def test_data_cli_refuses_an_unbounded_render_size(tmp_path, capsys):
    from sketch_diffusion.data import main

    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(tmp_path / "any.ndjson"), "--out", str(tmp_path / "x.png"), "--size", "100000"])
    assert exit_info.value.code == 2 and "between 16 and 4096" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- the pipeline


def test_two_point_strokes_in_the_official_layout_are_read_as_xs_and_ys(tiny_pipeline):
    out = tiny_pipeline(num_sketches=1, max_strokes=3, prefix_strokes=[[[175, 255], [147, 168]]],
                        generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out.strokes[0][0], [[175, 147], [255, 168]])
    from pipeline.representation import as_stroke_list

    (raw,) = as_stroke_list([[[10, 20], [30, 40], [0, 17]]])  # raw [xs, ys, ts] with two points
    np.testing.assert_array_equal(raw, [[10, 30], [20, 40]])
    (points,) = as_stroke_list([np.array([[175, 255], [147, 168]])])  # an array is (n, 2) points
    np.testing.assert_array_equal(points, [[175, 255], [147, 168]])


@pytest.mark.parametrize("name", ["HeunDiscreteScheduler", "EDMEulerScheduler", "IPNDMScheduler",
                                  "FlowMatchEulerDiscreteScheduler"])
def test_schedulers_that_do_not_sample_the_training_process_are_refused(tiny_pipeline, name):
    import diffusers

    tiny_pipeline.scheduler = getattr(diffusers, name)()
    with pytest.raises(ValueError, match=f"scheduler {name} is not supported"):
        tiny_pipeline(num_sketches=1, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- evaluate.py


@needs_shared
def test_evaluate_writes_nothing_for_too_few_generated_sketches(tmp_path):
    import evaluate

    generated = tmp_path / "five.ndjson"
    generated.write_text("".join(gzip.open(simplified_sample("cat"), "rt").read().splitlines(True)[:5]))
    out = tmp_path / "metrics.json"
    with pytest.raises(ValueError, match="holds 5 valid sketches, fewer than the 25"):
        evaluate.main(["--generated", str(generated), "--category", "cat", "--data", str(simplified_sample("cat")),
                       "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert not out.exists()


@needs_shared
def test_evaluate_writes_nothing_for_a_model_with_corrupted_weights(tmp_path):
    import evaluate

    pipe = make_tiny_pipeline()
    with torch.no_grad():
        pipe.transformer.stop_head.bias.fill_(float("nan"))
        pipe.transformer.head_out.bias.fill_(float("nan"))
    pipe.save_pretrained(tmp_path / "m")
    out = tmp_path / "metrics.json"
    with pytest.raises(FloatingPointError, match="corrupted"):
        evaluate.main(["--model", str(tmp_path / "m"), "--category", "cat", "--data", str(simplified_sample("cat")),
                       "--out", str(out), "--num-inference-steps", "2", "--cache-dir", str(tmp_path / "cache")])
    assert not out.exists()


@pytest.mark.parametrize("flag, message", [("--num-samples=1000000", "more than 100,000"),
                                           ("--render-size=20000", "between 75")])
def test_evaluate_refuses_unbounded_requests(tmp_path, capsys, flag, message):
    import evaluate

    with pytest.raises(SystemExit):
        evaluate.parse_args(["--generated", "g.ndjson", "--category", "cat", "--out", "m.json", flag])
    assert message in capsys.readouterr().err


def test_a_deeply_nested_json_line_is_named_not_a_traceback(tmp_path):
    from sketch_diffusion.data import read_drawings

    path = tmp_path / "deep.ndjson"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match=r"deep.ndjson, line 1 \(index 0\): not a drawing record"):
        list(read_drawings(path))


# ----------------------------------------------------------------------------- found by a probe of the entry points


def test_a_pipeline_call_with_a_non_list_prefix_or_a_runaway_temperature_is_named(tiny_pipeline):
    with pytest.raises(ValueError, match="prefix_strokes must be a list of strokes, got int"):
        tiny_pipeline(prefix_strokes=5)
    with pytest.raises(ValueError, match="temperature=1e\\+30 is more than 10"):
        tiny_pipeline(temperature=1e30)


def test_a_damaged_inception_cache_is_converted_again(tmp_path):
    from sketch_diffusion.metrics import inception_extractor, inception_weights

    weights = inception_weights(None, tmp_path)
    size = weights.path.stat().st_size
    weights.path.write_bytes(weights.path.read_bytes()[:1_000_000])  # a crash or a full disk cut it
    again = inception_weights(None, tmp_path)
    assert again.path.stat().st_size == size and again.sha256 == weights.sha256
    (tmp_path / "bad.pth").write_text("garbage\n")
    with pytest.raises(ValueError, match="Inception weights .*bad.pth .* cannot be loaded"):
        inception_extractor(inception_weights(str(tmp_path / "bad.pth")))


def test_evaluate_refuses_a_grid_path_that_is_a_folder_before_any_work(tmp_path, capsys):
    import evaluate

    with pytest.raises(SystemExit):
        evaluate.parse_args(["--generated", "g.ndjson", "--category", "cat", "--out", str(tmp_path / "m.json"),
                             "--grid", str(tmp_path)])
    assert f"--grid {tmp_path} is a folder" in capsys.readouterr().err


@needs_shared
def test_data_download_checks_a_file_that_is_already_there(tmp_path, capsys):
    import shutil

    from sketch_diffusion.data import main as data_main

    shutil.copyfile(simplified_sample("cat"), tmp_path / "cat.ndjson")  # 25 drawings, not the official file
    assert data_main(["download", "--category", "cat", "--data-dir", str(tmp_path)]) == 1
    assert "is not the official cat file" in capsys.readouterr().err


@needs_shared
@pytest.mark.parametrize("args, message", [
    (["--line-width", "-3"], "must be a number of pixels in (0, 64]"),
    (["--line-width", "nan"], "must be a number of pixels in (0, 64]"),
])
def test_data_render_checks_its_line_width(tmp_path, capsys, args, message):
    from sketch_diffusion.data import main as data_main

    with pytest.raises(SystemExit):
        data_main(["render", str(simplified_sample("cat")), "--out", str(tmp_path / "a.png"), *args])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_a_folder_given_as_a_data_file_is_called_a_folder(tmp_path):
    from sketch_diffusion.data import load_strokes

    with pytest.raises(IsADirectoryError, match="is a folder, not an ndjson"):
        load_strokes(tmp_path)
