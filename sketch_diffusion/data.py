"""Quick, Draw! data: read and validate ndjson files, the official split, and cached Arrow datasets.

A *record* is one drawing in the official schema (``word, countrycode, timestamp, recognized,
key_id, drawing``); ``drawing`` is a list of strokes ``[xs, ys]`` (simplified: integers 0..255) or
``[xs, ys, ts]`` (raw: floats plus milliseconds). Messages give the 1-based line number and the 0-based
index; split indices are 0-based line numbers, as in the official files.

Command line: ``python -m sketch_diffusion.data --help``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pipeline.representation import CANVAS_SIZE, raw_to_simplified

from .download import OFFICIAL_FILES, SPLIT_TEST_SIZE, SPLIT_TRAIN_SIZE, is_official_file, official_file
from .fileio import file_digest, git_blob_sha1, write_bytes_atomic, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("word", "countrycode", "timestamp", "recognized", "key_id", "drawing")


# ----------------------------------------------------------------------------- reading


class QuickDrawFormatError(ValueError):
    """A file or record that is not valid Quick, Draw! ndjson; the message names file and line."""


@dataclass
class ReadReport:
    """Counts of what ``read_drawings`` read and skipped (with ``errors="skip"``)."""

    path: str = ""
    num_lines: int = 0
    num_read: int = 0
    num_skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.num_skipped += 1
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_text(path: str | os.PathLike):
    """Open a plain or gzipped text file (detected from its magic bytes) for streaming reads."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an ndjson[.gz] file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_record(record, kind: str = "auto") -> str | None:
    """Return what is wrong with a parsed record, or ``None`` if it is valid.

    ``kind``: ``"simplified"`` (integer-valued coordinates 0..255), ``"raw"`` (finite numbers plus
    a times list per stroke) or ``"auto"`` (raw if a stroke carries three lists).
    """
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    drawing = record["drawing"]
    if not isinstance(drawing, list) or not drawing:
        return "'drawing' must be a non-empty list of strokes"
    for i, stroke in enumerate(drawing):
        if not isinstance(stroke, list) or len(stroke) not in (2, 3):
            return f"stroke {i} must be [xs, ys] or [xs, ys, ts]"
        stroke_kind = kind if kind != "auto" else ("raw" if len(stroke) == 3 else "simplified")
        if stroke_kind == "simplified" and len(stroke) != 2:
            return f"stroke {i} has {len(stroke)} lists; simplified strokes are [xs, ys]"
        if stroke_kind == "raw" and len(stroke) != 3:
            return f"stroke {i} has {len(stroke)} lists; raw strokes are [xs, ys, ts]"
        if not all(isinstance(v, list) for v in stroke):
            return f"stroke {i}: xs, ys (and ts) must be lists"
        n = len(stroke[0])
        if n == 0:
            return f"stroke {i} has no points"
        if any(len(v) != n for v in stroke):
            return f"stroke {i} has lists of unequal lengths {[len(v) for v in stroke]}"
        for axis, values in zip("xyt", stroke):
            if not all(_is_number(v) for v in values):
                return f"stroke {i}: {axis} values must be finite numbers"
        if stroke_kind == "simplified":
            for axis, values in zip("xy", stroke):
                if min(values) < 0 or max(values) > 255:
                    return f"stroke {i}: {axis} outside 0..255 (min {min(values)}, max {max(values)})"
    return None


def read_drawings(path: str | os.PathLike, errors: str = "raise", kind: str = "auto",
                  report: ReadReport | None = None) -> Iterator[dict]:
    """Stream validated records from a plain or gzipped ndjson file.

    Each yielded dict is the record plus ``"_line"``, its 0-based line number (the official index).
    ``errors="raise"`` (default) raises ``QuickDrawFormatError`` naming file, line and problem;
    ``errors="skip"`` skips bad records and counts them in ``report``. A file with no valid
    drawings, or a truncated gzip stream, always raises.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    report = report if report is not None else ReadReport()
    report.path = str(path)
    with open_text(path) as f:
        try:
            for line_no, line in enumerate(f):
                report.num_lines += 1
                if not line.strip():
                    problem = "empty line"
                else:
                    try:
                        record = json.loads(line)
                        problem = validate_record(record, kind)
                    except json.JSONDecodeError as exc:
                        problem = f"not valid JSON ({exc.msg} at column {exc.colno})"
                    except RecursionError:
                        problem = "not a drawing record (JSON nested too deeply)"
                if problem is not None:
                    if errors == "raise":
                        raise QuickDrawFormatError(f"{path}, line {line_no + 1} (index {line_no}): {problem}")
                    report.skip(re.sub(r"^stroke \d+:? ", "stroke: ", problem).split(" (")[0])
                    continue
                report.num_read += 1
                record["_line"] = line_no
                yield record
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise QuickDrawFormatError(
                f"{path}: the gzip stream is truncated or corrupt after line {report.num_lines} ({exc})"
            ) from None
        except UnicodeDecodeError as exc:
            raise QuickDrawFormatError(f"{path}, line {report.num_lines + 1}: not UTF-8 text ({exc.reason})") from None
    if report.num_skipped:
        logger.warning("%s: skipped %d bad record(s): %s", path, report.num_skipped, report.skipped_reasons)
    if report.num_read == 0:
        what = "is empty" if report.num_lines == 0 else f"has no valid drawings ({report.num_skipped} bad lines)"
        raise QuickDrawFormatError(f"{path} {what}")


def is_raw_record(record: dict) -> bool:
    """Whether a valid record is in the raw format: strokes ``[xs, ys, ts]`` in the drawing's own pixels."""
    return len(record["drawing"][0]) == 3


def record_strokes(record: dict) -> list[np.ndarray]:
    """The record's strokes as ``(n, 2)`` float32 arrays in canvas pixels 0..255.

    A raw record (``is_raw_record``) is brought to the simplified files' form first: the times dropped, the
    drawing scaled so its longer side spans 0..255 at the top-left corner, and each stroke RDP-simplified with
    a 2-pixel tolerance to integer pixels, as Google made the simplified files.
    """
    strokes = [np.asarray(stroke[:2], dtype=np.float32).T for stroke in record["drawing"]]
    return raw_to_simplified(strokes) if is_raw_record(record) else strokes


def load_strokes(path: str | os.PathLike, **kwargs) -> list[list[np.ndarray]]:
    """All drawings of a file as lists of ``(n, 2)`` arrays (see ``read_drawings`` for kwargs)."""
    return [record_strokes(r) for r in read_drawings(path, **kwargs)]


def to_ndjson_record(strokes: Sequence[np.ndarray], word: str, key_id: str, countrycode: str = "ZZ",
                     recognized: bool = True, timestamp: str | None = None, **extra) -> dict:
    """A sketch in the official simplified schema: integer ``[xs, ys]`` strokes clipped to 0..255.

    ``countrycode="ZZ"`` (user-assigned in ISO 3166) marks generated drawings; ``extra`` keys (such as
    ``source``) are appended after the official ones.
    """
    drawing = []
    for stroke in strokes:
        pts = np.clip(np.round(np.asarray(stroke, dtype=np.float64)), 0, CANVAS_SIZE).astype(int)
        drawing.append([pts[:, 0].tolist(), pts[:, 1].tolist()])
    if timestamp is None:
        timestamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    record = {"word": word, "countrycode": countrycode, "timestamp": timestamp, "recognized": recognized,
              "key_id": str(key_id), "drawing": drawing}
    record.update(extra)
    return record


# ----------------------------------------------------------------------------- split


def official_split(category: str) -> dict[str, list[int]]:
    """Regenerate the task's official split: 10,000 train and 2,000 test indices, duplicates included.

    Recipe (legacy NumPy global RNG): ``np.random.seed(S); idx = np.random.randint(0, N + 1, 12000)``.
    """
    spec = official_file(category)
    rng = np.random.RandomState(spec.split_seed)  # identical stream to np.random.seed + randint
    idx = rng.randint(0, spec.num_drawings + 1, size=SPLIT_TRAIN_SIZE + SPLIT_TEST_SIZE)
    return {"train": idx[:SPLIT_TRAIN_SIZE].tolist(), "test": idx[SPLIT_TRAIN_SIZE:].tolist()}


def leak_free_test(split: dict[str, Sequence[int]]) -> list[int]:
    """Sorted unique test indices that do not occur in train (the de-duplicated, leak-free test subset)."""
    return sorted(set(split["test"]) - set(split["train"]))


def load_split(path: str | os.PathLike) -> dict[str, list[int]]:
    """Read and validate a split file ``{"train": [ints], "test": [ints]}``."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"split file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"split file {path} is not valid JSON: {exc}") from None
    if not isinstance(split, dict) or not {"train", "test"} <= set(split):
        raise ValueError(f"split file {path} must be a JSON object with 'train' and 'test' lists")
    for name in ("train", "test"):
        values = split[name]
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                   for v in values):
            raise ValueError(f"split file {path}: '{name}' must be a list of non-negative integers")
    return {"train": split["train"], "test": split["test"]}


# ----------------------------------------------------------------------------- Arrow datasets

DATASET_FORMAT_VERSION = 2  # 2: raw drawings are stored in the simplified canvas form


def build_dataset(ndjson_path: str | os.PathLike, split: dict[str, Sequence[int]], cache_dir: str | os.PathLike,
                  errors: str = "raise"):
    """A ``datasets.DatasetDict`` with ``train``, ``test`` (as given) and ``test_leak_free`` rows.

    Empty subsets (e.g. no test set) are left out of the dict.

    Rows keep the official fields plus ``index`` (the 0-based line number). Built once per
    (file content, split) and cached under ``cache_dir`` with ``save_to_disk``; later calls load
    the cache. An index past the end of the file is an error naming the split and the file.
    With ``errors="skip"``, rows whose line is invalid are dropped and counted in the
    dataset's ``info.description``.
    """
    import datasets

    ndjson_path = Path(ndjson_path)
    split_json = json.dumps({"train": list(split["train"]), "test": list(split["test"])}, sort_keys=True)
    key = hashlib.sha1(
        f"{file_digest(ndjson_path, 'sha1')}:{hashlib.sha1(split_json.encode()).hexdigest()}:"
        f"{errors}:{DATASET_FORMAT_VERSION}".encode()
    ).hexdigest()[:16]
    target = Path(cache_dir) / f"{ndjson_path.name.split('.')[0]}-{key}"
    if (target / "dataset_dict.json").is_file():
        try:
            cached = datasets.load_from_disk(str(target))
            for subset in cached.values():  # read a row of each table: a truncated file fails here, not later
                subset[len(subset) - 1]
            return cached
        except Exception as exc:  # a damaged cache is rebuilt, not trusted
            logger.warning("the dataset cache %s is unreadable (%s): building it again", target, exc)
            shutil.rmtree(target, ignore_errors=True)

    subsets = {"train": list(split["train"]), "test": list(split["test"]), "test_leak_free": leak_free_test(split)}
    wanted = set().union(*subsets.values())
    report = ReadReport()
    records = {}
    for record in read_drawings(ndjson_path, errors=errors, report=report):
        if record["_line"] in wanted:
            records[record["_line"]] = record
    beyond = sorted(i for i in wanted if i >= report.num_lines)
    if beyond:
        raise ValueError(
            f"split refers to line(s) {beyond[:5]}{'...' if len(beyond) > 5 else ''} but {ndjson_path} has "
            f"only {report.num_lines} lines: is this the right file for this split?"
        )

    features = datasets.Features({
        "index": datasets.Value("int64"),
        "key_id": datasets.Value("string"),
        "word": datasets.Value("string"),
        "countrycode": datasets.Value("string"),
        "recognized": datasets.Value("bool"),
        "timestamp": datasets.Value("string"),
        "drawing": datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32")))),
    })

    def columns(indices) -> dict[str, list]:
        present = [records[i] for i in indices if i in records]
        return {"index": [r["_line"] for r in present], "key_id": [str(r["key_id"]) for r in present],
                "word": [str(r["word"]) for r in present], "countrycode": [str(r["countrycode"]) for r in present],
                "recognized": [bool(r["recognized"]) for r in present],
                "timestamp": [str(r["timestamp"]) for r in present],
                "drawing": [[stroke.T.tolist() for stroke in record_strokes(r)] for r in present]}

    dropped = {name: sum(i not in records for i in idx) for name, idx in subsets.items()}
    description = json.dumps({"source": str(ndjson_path), "skipped_lines": report.num_skipped,
                              "rows_dropped_as_invalid": dropped})
    dsd = datasets.DatasetDict({
        name: datasets.Dataset.from_dict(columns(idx), features=features,
                                         info=datasets.DatasetInfo(description=description, features=features))
        for name, idx in subsets.items() if any(i in records for i in idx)  # datasets cannot reload empty tables
    })
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))  # one per process that builds it
    try:
        dsd.save_to_disk(str(tmp))
        os.replace(tmp, target)
    except OSError:
        if not (target / "dataset_dict.json").is_file():  # not another process's complete copy: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(target))


def dataset_strokes(dataset) -> list[list[np.ndarray]]:
    """Rows of a built dataset as lists of ``(n, 2)`` float32 stroke arrays (canvas pixels)."""
    return [[np.asarray(s, dtype=np.float32).T for s in d] for d in dataset["drawing"]]


def resolve_split(data_file: str | os.PathLike, category: str | None, split: str | None = None
                  ) -> tuple[dict[str, list[int]], str]:
    """The split to use for ``data_file`` and a description of where it came from.

    ``split``: a JSON file path, ``"official"`` (the regenerated official split of ``category``, only for the
    official file itself) or ``"all"`` (every line is a training drawing, no test set). ``None`` picks
    ``"official"`` when ``data_file`` is the official file of ``category`` (by its git blob sha1), else ``"all"``.
    """
    if split not in (None, "official", "all"):
        return load_split(split), f"file {split}"
    if split is None:
        split = "official" if is_official_file(data_file, category) else "all"
        if split == "all":
            logger.warning("%s is not the official %s file: using all its drawings for training, no test set. "
                           "Pass --split FILE.json to hold drawings out.", data_file, category)
    elif split == "official":
        official_file(category)  # an unknown category raises a clear error
        if not is_official_file(data_file, category):
            raise ValueError(f"--split official: {data_file} is not the official {category} file (its content "
                             "differs), so the official split's line numbers do not apply to it; pass --split FILE.json")
    if split == "official":
        return official_split(category), f"official {category} split (regenerated, seed {OFFICIAL_FILES[category].split_seed})"
    with open_text(data_file) as f:
        num_lines = sum(1 for _ in f)
    return {"train": list(range(num_lines)), "test": []}, "all lines of the file as train"


def check_word(dsd, word: str, data_file) -> None:
    """Refuse a dataset none of whose drawings is of ``word`` (a file of another category); warn when some are not."""
    words: dict[str, int] = {}
    for name in dsd:
        for w in dsd[name]["word"]:
            words[w] = words.get(w, 0) + 1
    others = {w: n for w, n in words.items() if w != word}
    if others and word not in words:
        raise ValueError(f"{data_file} holds drawings of {', '.join(map(repr, sorted(others)))}, none of "
                         f"{word!r}: is it the right file for --category {word}?")
    if others:
        logger.warning("%s: %d of %d drawings are not of %r: %s", data_file, sum(others.values()),
                       sum(words.values()), word, others)


def load_split_sketches(data_file: str | os.PathLike, split: dict[str, list[int]], cache_dir: str | os.PathLike,
                        errors: str = "raise", word: str | None = None) -> dict[str, list[list[np.ndarray]]]:
    """Sketches (lists of ``(n, 2)`` pixel arrays) of each subset through the cached Arrow dataset; with ``word``,
    the drawings must be of that category (``check_word``)."""
    dsd = build_dataset(data_file, split, cache_dir, errors=errors)
    if word is not None:
        check_word(dsd, word, data_file)
    return {name: dataset_strokes(dsd[name]) if name in dsd else [] for name in ("train", "test", "test_leak_free")}


# ----------------------------------------------------------------------------- statistics


def stroke_length(stroke: np.ndarray) -> float:
    """Polyline length of an ``(n, 2)`` stroke, in its units (0 for a single point)."""
    return float(np.linalg.norm(np.diff(stroke, axis=0), axis=1).sum())


def stroke_statistics(sketches: Sequence[Sequence[np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-sketch and per-stroke statistics, in canvas pixels.

    Returns arrays: ``strokes_per_sketch`` (per sketch), ``points_per_stroke`` and
    ``stroke_length`` (per stroke, polyline length), ``extent`` (per sketch, longer side of the
    bounding box).
    """
    strokes_per_sketch, points, lengths, extents = [], [], [], []
    for sketch in sketches:
        strokes_per_sketch.append(len(sketch))
        for s in sketch:
            points.append(len(s))
            lengths.append(stroke_length(s))
        allp = np.concatenate(sketch, axis=0)
        extents.append(float((allp.max(axis=0) - allp.min(axis=0)).max()))
    return {"strokes_per_sketch": np.array(strokes_per_sketch), "points_per_stroke": np.array(points),
            "stroke_length": np.array(lengths), "extent": np.array(extents)}


# ----------------------------------------------------------------------------- command line


def _cmd_download(args) -> None:
    from .download import download_official, is_official_blob

    path = download_official(args.category, args.data_dir)
    blob = git_blob_sha1(path)  # a file already there is checked like a download
    if not is_official_blob(blob, args.category):
        raise ValueError(f"{path} is there but is not the official {args.category} file (git blob sha1 {blob}): move "
                         "it away and run the download again, or give it to train.py and evaluate.py with --data")
    print(path)


def _cmd_split(args) -> None:
    split = official_split(args.category)
    if args.out:
        write_text_atomic(args.out, json.dumps(split) + "\n")
        print(f"wrote {args.out}: {len(split['train'])} train, {len(split['test'])} test indices "
              f"({len(leak_free_test(split))} unique test indices not in train)")
    else:
        print(json.dumps(split))


def _cmd_render(args) -> None:
    from pipeline import rendering

    for record in read_drawings(args.input, errors=args.errors):
        if record["_line"] == args.index:
            break
    else:
        raise SystemExit(f"{args.input} has no valid drawing at index {args.index}")
    strokes = record_strokes(record)
    style = {"size": args.size, "line_width": args.line_width}
    suffix = Path(args.out).suffix.lower()
    if suffix == ".png":
        data = rendering.png_bytes(rendering.render_image(strokes, **style))
    elif suffix == ".svg":
        data = rendering.render_svg(strokes, **style).encode()
    elif suffix == ".gif":
        data = rendering.sketch_gif(strokes, **style)
    else:
        raise SystemExit(f"--out must end in .png, .svg or .gif, got {args.out!r}")
    write_bytes_atomic(args.out, data)
    print(f"wrote {args.out} ({record['word']!r}, {len(strokes)} strokes)")


def _cmd_stats(args) -> None:
    report = ReadReport()
    sketches = [record_strokes(r) for r in read_drawings(args.input, errors=args.errors, report=report)]
    stats = stroke_statistics(sketches)
    quantiles = (0.0, 0.1, 0.5, 0.9, 1.0)
    result = {"file": str(args.input), "drawings": len(sketches), "skipped": report.num_skipped}
    for name, values in stats.items():
        result[name] = {f"q{int(q * 100)}": float(np.quantile(values, q)) for q in quantiles}
        result[name]["mean"] = float(values.mean())
    print(json.dumps(result, indent=2))
    if args.out:
        write_json_atomic(args.out, result)


def _line_width(text: str) -> float:
    width = float(text)
    if not (math.isfinite(width) and 0 < width <= 64):
        raise argparse.ArgumentTypeError(f"must be a number of pixels in (0, 64], got {text}")
    return width


def _render_size(text: str) -> int:
    size = int(text)
    if not 16 <= size <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 16 and 4096 pixels, got {size}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sketch_diffusion.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download and verify the official simplified file of a category")
    p.add_argument("--category", required=True, choices=sorted(OFFICIAL_FILES))
    p.add_argument("--data-dir", default="data", help="folder for <category>.ndjson (default: %(default)s)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("split", help="regenerate the official train/test split of a category")
    p.add_argument("--category", required=True, choices=sorted(OFFICIAL_FILES))
    p.add_argument("--out", help="write {'train': [...], 'test': [...]} here (default: print)")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("render", help="render one drawing of an ndjson[.gz] file to PNG, SVG or GIF")
    p.add_argument("input", help="ndjson or ndjson.gz file (simplified or raw)")
    p.add_argument("--index", type=int, default=0, help="0-based line number of the drawing (default: 0)")
    p.add_argument("--out", required=True, help="output file; .png, .svg or .gif (stroke-by-stroke animation)")
    p.add_argument("--size", type=_render_size, default=256, help="image size in pixels, 16..4096 (default: %(default)s)")
    p.add_argument("--line-width", type=_line_width, default=3.0,
                   help="line width in output pixels (default: %(default)s)")
    p.add_argument("--errors", choices=("raise", "skip"), default="raise", help="on a bad record (default: raise)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("stats", help="drawings, strokes per drawing, points per stroke: quantiles")
    p.add_argument("input", help="ndjson or ndjson.gz file")
    p.add_argument("--errors", choices=("raise", "skip"), default="raise", help="on a bad record (default: raise)")
    p.add_argument("--out", help="also write the statistics as JSON here")
    p.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
