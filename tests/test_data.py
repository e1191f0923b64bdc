import gzip
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import CATEGORIES, REPO, SPLITS, needs_shared, raw_sample, simplified_sample
from sketch_diffusion import data
from sketch_diffusion.data import QuickDrawFormatError, ReadReport, read_drawings
from sketch_diffusion.download import (OFFICIAL_FILES, DownloadError, download_file, is_official_file,
                                       official_file, resolve_data_file)
from sketch_diffusion.fileio import git_blob_sha1

GOOD = {"word": "cat", "countrycode": "US", "timestamp": "t", "recognized": True, "key_id": "1",
        "drawing": [[[0, 10, 255], [0, 20, 30]]]}


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


# ----------------------------------------------------------------------------- reading real files


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_reads_real_simplified_and_raw_samples(category):
    simplified = list(read_drawings(simplified_sample(category), kind="simplified"))
    raw = list(read_drawings(raw_sample(category), kind="raw"))
    assert len(simplified) == 25
    assert [r["_line"] for r in simplified] == list(range(25))
    assert all(r["word"] == category for r in simplified + raw)
    # the raw sample holds the same drawings, in the same order, as the simplified one
    assert [r["key_id"] for r in raw] == [r["key_id"] for r in simplified[: len(raw)]]


@needs_shared
def test_simplified_sample_rejected_as_raw():
    with pytest.raises(QuickDrawFormatError, match=r"line 1 \(index 0\): stroke 0 has 2 lists; raw strokes"):
        list(read_drawings(simplified_sample("cat"), kind="raw"))


# ----------------------------------------------------------------------------- validation errors


@pytest.mark.parametrize("bad, message", [
    ({k: v for k, v in GOOD.items() if k != "key_id"}, "missing key"),
    (dict(GOOD, drawing=[]), "non-empty list"),
    (dict(GOOD, drawing=[[[1, 2], [3]]]), "unequal lengths"),
    (dict(GOOD, drawing=[[[], []]]), "no points"),
    (dict(GOOD, drawing=[[[1, "a"], [3, 4]]]), "finite numbers"),
    (dict(GOOD, drawing=[[[1, 300], [3, 4]]]), "outside 0..255"),
    (dict(GOOD, drawing=[[[1, 2]]]), r"\[xs, ys\]"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
])
def test_bad_record_names_file_line_and_problem(tmp_path, bad, message):
    path = write_lines(tmp_path / "x.ndjson", [GOOD, bad])
    with pytest.raises(QuickDrawFormatError, match=message) as info:
        list(read_drawings(path))
    assert f"{path}, line 2" in str(info.value)


def test_skip_mode_counts_bad_records(tmp_path):
    path = write_lines(tmp_path / "x.ndjson", [GOOD, "{oops", dict(GOOD, drawing=[]), GOOD])
    report = ReadReport()
    records = list(read_drawings(path, errors="skip", report=report))
    assert [r["_line"] for r in records] == [0, 3]
    assert (report.num_read, report.num_skipped, report.num_lines) == (2, 2, 4)


def test_empty_file_and_all_bad_file_raise(tmp_path):
    (tmp_path / "empty.ndjson").write_text("")
    with pytest.raises(QuickDrawFormatError, match="is empty"):
        list(read_drawings(tmp_path / "empty.ndjson"))
    path = write_lines(tmp_path / "bad.ndjson", ["{x", "{y"])
    with pytest.raises(QuickDrawFormatError, match="no valid drawings"):
        list(read_drawings(path, errors="skip"))


def test_truncated_gzip_raises_instead_of_partial_result(tmp_path):
    blob = gzip.compress(("".join(json.dumps(GOOD) + "\n" for _ in range(2000))).encode())
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(QuickDrawFormatError, match="truncated or corrupt"):
        list(read_drawings(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ndjson"):
        list(read_drawings(tmp_path / "nope.ndjson"))


# ----------------------------------------------------------------------------- split


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_regenerated_split_equals_official_file(category):
    official = json.loads((SPLITS / category / "indices.json").read_text())
    assert data.official_split(category) == official


@needs_shared
@pytest.mark.parametrize("category, unique_test, leaked", [("cat", 1984, 166), ("bus", 1987, 109), ("rabbit", 1981, 134)])
def test_leak_free_test_excludes_exactly_the_train_indices(category, unique_test, leaked):
    split = json.loads((SPLITS / category / "indices.json").read_text())
    clean = data.leak_free_test(split)
    assert len(set(split["test"])) == unique_test
    assert len(clean) == unique_test - leaked
    assert not set(clean) & set(split["train"])
    assert set(clean) | (set(split["test"]) & set(split["train"])) == set(split["test"])


@needs_shared
def test_official_files_are_known_by_content_not_by_name(tmp_path):
    assert official_file("bus").url == "https://storage.googleapis.com/quickdraw_dataset/full/simplified/bus.ndjson"
    assert set(OFFICIAL_FILES) == set(CATEGORIES)
    assert not is_official_file(simplified_sample("cat"), "cat")  # the first 25 lines are not the official file
    assert not is_official_file(simplified_sample("cat"), "dog")  # nor is anything of an unknown category


def test_unknown_category_is_named():
    with pytest.raises(ValueError, match="unknown category 'dog'"):
        data.official_split("dog")


@pytest.mark.parametrize("content, message", [("{", "not valid JSON"), ('{"train": [1]}', "'train' and 'test'"),
                                               ('{"train": [1], "test": [-1]}', "non-negative integers")])
def test_bad_split_file_is_named(tmp_path, content, message):
    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        data.load_split(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- Arrow dataset


@needs_shared
def test_build_dataset_selects_split_rows_and_caches(tmp_path):
    split = {"train": [0, 3, 3, 7], "test": [3, 9, 24]}
    dsd = data.build_dataset(simplified_sample("bus"), split, tmp_path)
    assert dsd["train"]["index"] == [0, 3, 3, 7]  # as given, duplicates kept
    assert dsd["test"]["index"] == [3, 9, 24]
    assert dsd["test_leak_free"]["index"] == [9, 24]
    records = list(read_drawings(simplified_sample("bus")))
    assert dsd["test"][2]["key_id"] == records[24]["key_id"]
    np.testing.assert_array_equal(data.dataset_strokes(dsd["test"])[2][0], data.record_strokes(records[24])[0])
    cached = list(tmp_path.iterdir())
    again = data.build_dataset(simplified_sample("bus"), split, tmp_path)
    assert list(tmp_path.iterdir()) == cached and again["train"]["index"] == [0, 3, 3, 7]


@needs_shared
def test_build_dataset_rejects_split_beyond_file(tmp_path):
    with pytest.raises(ValueError, match="only 25 lines"):
        data.build_dataset(simplified_sample("cat"), data.official_split("cat"), tmp_path)


# ----------------------------------------------------------------------------- download (loopback only)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    cut_after = None  # bytes sent before the server closes the connection (None: all)

    def do_GET(self):  # noqa: N802
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if self.cut_after is None else body[: self.cut_after])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    payload = "".join(json.dumps(GOOD) + "\n" for _ in range(300)).encode()
    RangeHandler.payload = payload
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    src = tmp_path / "src.ndjson"
    src.write_bytes(payload)
    yield f"http://127.0.0.1:{httpd.server_port}/cat.ndjson", payload, git_blob_sha1(src)
    httpd.shutdown()
    RangeHandler.cut_after = None


def test_download_resumes_partial_file_and_verifies(tmp_path, server):
    url, payload, sha = server
    dest = tmp_path / "out" / "cat.ndjson"
    dest.parent.mkdir()
    (dest.parent / "cat.ndjson.part").write_bytes(payload[:1000])  # an interrupted earlier download
    assert download_file(url, dest, sha, progress=False) == dest
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cat.ndjson"]


def test_a_connection_closed_early_keeps_the_partial_file_to_resume(tmp_path, server):
    url, payload, sha = server
    dest = tmp_path / "out" / "cat.ndjson"
    RangeHandler.cut_after = 1500  # the server closes cleanly, short of its Content-Length
    with pytest.raises(DownloadError, match="run again to resume"):
        download_file(url, dest, sha, progress=False)
    assert (dest.parent / "cat.ndjson.part").read_bytes() == payload[:1500]
    RangeHandler.cut_after = None
    assert download_file(url, dest, sha, progress=False) == dest
    assert dest.read_bytes() == payload


def test_download_with_wrong_hash_keeps_nothing(tmp_path, server):
    url, _, _ = server
    dest = tmp_path / "out" / "cat.ndjson"
    with pytest.raises(DownloadError, match="does not match the expected"):
        download_file(url, dest, "0" * 40, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_download_offline_fails_fast_with_manual_instructions(tmp_path):
    import socket
    import time

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "cat.ndjson"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"cannot reach .* place it at .*cat.ndjson"):
        download_file(f"http://127.0.0.1:{port}/cat.ndjson", dest, "0" * 40, progress=False, timeout=5)
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


@needs_shared
def test_resolve_data_file_accepts_file_and_folder(tmp_path):
    assert resolve_data_file("cat", simplified_sample("cat")) == simplified_sample("cat")
    (tmp_path / "bus.ndjson").write_text(json.dumps(GOOD) + "\n")
    assert resolve_data_file("bus", tmp_path) == tmp_path / "bus.ndjson"
    with pytest.raises(FileNotFoundError, match="no rabbit.ndjson"):
        resolve_data_file("rabbit", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m sketch_diffusion.data download"):
        resolve_data_file("cat", None, tmp_path / "empty", allow_download=False)


# ----------------------------------------------------------------------------- command line


@needs_shared
def test_cli_render_gif_has_a_frame_per_stroke(tmp_path):
    from PIL import Image

    out = tmp_path / "cat.gif"
    assert data.main(["render", str(simplified_sample("cat")), "--index", "0", "--out", str(out)]) == 0
    strokes = data.record_strokes(next(read_drawings(simplified_sample("cat"))))
    with Image.open(out) as gif:
        assert gif.n_frames == len(strokes) + 1  # blank canvas, then one frame per stroke
        gif.seek(gif.n_frames - 1)
        assert np.asarray(gif.convert("L")).min() < 50  # ink on the last frame


@needs_shared
def test_cli_split_and_stats(tmp_path, capsys):
    out = tmp_path / "split.json"
    assert data.main(["split", "--category", "rabbit", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((SPLITS / "rabbit" / "indices.json").read_text())
    assert data.main(["stats", str(simplified_sample("bus")), "--out", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["drawings"] == 25 and stats["strokes_per_sketch"]["q0"] >= 1


def test_cli_errors_exit_nonzero(tmp_path, capsys):
    assert data.main(["stats", str(tmp_path / "missing.ndjson")]) == 1
    assert "missing.ndjson" in capsys.readouterr().err
    cli = subprocess.run([sys.executable, "-m", "sketch_diffusion.data", "stats", str(tmp_path / "missing.ndjson")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)  # the module's command line
    assert cli.returncode == 1 and "missing.ndjson" in cli.stderr and "Traceback" not in cli.stderr


@needs_shared
def test_a_damaged_dataset_cache_is_rebuilt(tmp_path):
    from conftest import sketches_equal

    split = {"train": list(range(20)), "test": list(range(20, 25))}
    first = data.load_split_sketches(simplified_sample("cat"), split, tmp_path)
    tables = sorted(tmp_path.rglob("*.arrow"))
    assert tables
    for table in tables:  # cut short, as a full disk or a kill during a copy leaves it
        table.write_bytes(table.read_bytes()[:300])
    again = data.load_split_sketches(simplified_sample("cat"), split, tmp_path)
    assert first.keys() == again.keys() and all(sketches_equal(first[k], again[k]) for k in first)
