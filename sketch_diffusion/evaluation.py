"""Evaluation under ``evaluate.py``: sampling in batches, rendering for the metrics, cached Inception features,
FID/KID against a test split, the real-vs-real reference floor and stroke statistics.

Real test drawings and generated sketches are rendered by the same renderer (``settings.METRIC_RENDER``) and
compared with torch-fidelity's FID and KID on InceptionV3 pool features (weights: see ``metrics``). Scores are
given for the test split as given (duplicates included) and for its de-duplicated, leak-free subset.
"""

from __future__ import annotations

import inspect
import io
import logging
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.rendering import image_grid, png_bytes, render_image

from .data import load_split_sketches, read_drawings, record_strokes, resolve_split, stroke_statistics
from .download import resolve_data_file
from .fileio import file_digest, write_bytes_atomic, write_json_atomic
from .metrics import (fid_kid_from_features, images_digest, inception_extractor, inception_features,
                      inception_weights, wasserstein_1d)
from .provenance import library_versions, weights_sha256
from .release import load_folder_code
from .settings import METRIC_RENDER, default_cache_dir, scheduler_class

logger = logging.getLogger("evaluate")


def render_all(sketches, size: int = METRIC_RENDER["size"], line_width: float = METRIC_RENDER["line_width"]
               ) -> np.ndarray:
    """Sketches (pixel strokes) -> ``(N, size, size)`` uint8 renders (default: the metrics' render settings)."""
    return np.stack([np.asarray(render_image(s, size=size, line_width=line_width)) for s in sketches])


class FeatureCache:
    """Inception features of rendered image sets, cached on disk by the images' digest and the weights."""

    def __init__(self, extractor, weights_sha256: str, folder: Path):
        self.extractor, self.weights_sha256, self.folder = extractor, weights_sha256, folder

    def __call__(self, images: np.ndarray) -> np.ndarray:
        path = self.folder / f"features-{images_digest(images)[:20]}-{self.weights_sha256[:12]}.npy"
        if path.is_file():
            try:
                features = np.load(path)
                if features.shape == (len(images), 2048) and np.isfinite(features).all():
                    return features
                logger.warning("%s does not hold %d finite feature rows of 2048: computing them again", path,
                               len(images))
            except (OSError, ValueError, EOFError) as exc:  # a damaged cache file is recomputed, not trusted
                logger.warning("%s is unreadable (%s): computing the features again", path, exc)
        features = inception_features(images, self.extractor, progress=True)
        buffer = io.BytesIO()
        np.save(buffer, features)
        write_bytes_atomic(path, buffer.getvalue())
        return features


def default_inference_steps(pipe) -> int:
    """The ``num_inference_steps`` a loaded pipeline uses when the caller gives none (pipelines saved before the
    distilled sampler: the default of their ``__call__``)."""
    if hasattr(pipe, "default_num_inference_steps"):
        return pipe.default_num_inference_steps
    return inspect.signature(pipe.__call__).parameters["num_inference_steps"].default


def sample_in_batches(pipe, num: int, batch_size: int, generator, **call) -> list:
    """Strokes of ``num`` sketches from ``pipe``, drawn ``batch_size`` at a time with one ``generator`` (so the
    sketches depend on the batch size); ``call`` goes to every pipeline call. No images are rendered unless ``call``
    sets ``output_type``."""
    sketches = []
    call = {"output_type": "strokes", **call}
    while len(sketches) < num:
        sketches += pipe(num_sketches=min(batch_size, num - len(sketches)), generator=generator, **call).strokes
    return sketches


def reference_floor_indices(split: dict, num: int, seed: int) -> list[int]:
    """The sorted line indices of ``num`` (at most) train drawings that are not in the test split, chosen with
    ``seed``: the real drawings that ``--reference-floor`` scores against the test set."""
    test_indices = set(split["test"])
    candidates = sorted({i for i in split["train"] if i not in test_indices})
    take = min(len(candidates), num)
    if take == 0:
        raise ValueError("--reference-floor needs train drawings that are not in the test split")
    return sorted(np.random.default_rng(seed).choice(candidates, size=take, replace=False).tolist())


def generate(model: str, num: int, args) -> tuple[list, dict]:
    """Sample ``num`` sketches (pixel strokes) from a pipeline; also return the sampling settings used."""
    try:
        pipe = load_folder_code(model)
    except ValueError as exc:
        raise ValueError(f"--model {exc}") from None
    pipe.set_progress_bar_config(disable=True)
    if args.scheduler != "saved":
        pipe.scheduler = scheduler_class(args.scheduler).from_config(pipe.scheduler.config)
    steps = args.num_inference_steps or default_inference_steps(pipe)
    guidance_scale = pipe.config.default_guidance_scale if args.guidance_scale is None else args.guidance_scale
    sketches = sample_in_batches(pipe, num, args.batch_size, torch.Generator().manual_seed(args.seed),
                                 num_inference_steps=steps, guidance_scale=guidance_scale,
                                 temperature=args.temperature, stroke_format=args.stroke_format)
    autocast = getattr(pipe, "autocast_dtype", None)  # pipelines saved before it have none: float32
    settings = {"num_inference_steps": steps, "guidance_scale": guidance_scale,
                "scheduler": type(pipe.scheduler).__name__, "autocast": str(autocast or "no"),
                "temperature": args.temperature, "stroke_format": args.stroke_format, "seed": args.seed,
                "batch_size": args.batch_size}
    return sketches, settings


def stroke_statistics_distance(real, generated) -> dict:
    """Wasserstein-1 distance per statistic (strokes per sketch, points per stroke, length and extent in pixels)."""
    a, b = stroke_statistics(real), stroke_statistics(generated)
    return {name: {"wasserstein": wasserstein_1d(a[name], b[name]), "real_mean": float(a[name].mean()),
                   "generated_mean": float(b[name].mean())} for name in a}


def evaluate(args) -> dict:
    """Score a model (``args.model``) or a file of generated sketches (``args.generated``) against the test split and
    write ``args.out``; ``args`` are ``evaluate.py``'s options. Returns the metrics written."""
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    started = time.time()

    data_file = resolve_data_file(args.category, args.data, args.data_dir, allow_download=not args.no_download)
    split, split_source = resolve_split(data_file, args.category, args.split)
    if not split["test"]:  # no held-out drawings: score against every drawing of the file
        split, split_source = {"train": [], "test": split["train"]}, "all lines of the file as test"
    subsets = load_split_sketches(data_file, split, cache / "datasets", word=args.category)
    test_sets = {"test": subsets["test"], "test_leak_free": subsets["test_leak_free"]}
    if not test_sets["test"]:
        raise ValueError(f"the split ({split_source}) has no test drawings in {data_file}")

    num = args.num_samples or len(test_sets["test"])
    sampling = None
    if args.generated:
        records = list(read_drawings(args.generated))
        words = sorted({str(record.get("word")) for record in records})
        if args.category not in words:
            logger.warning("--generated %s holds drawings of %s, none of --category %s: scoring them against the %s "
                           "test set all the same", args.generated, ", ".join(words), args.category, args.category)
        generated = [record_strokes(record) for record in records[:num]]
        if len(generated) < num:
            raise ValueError(f"--generated {args.generated} holds {len(generated)} valid sketches, fewer than the {num} "
                             "to score (FID of fewer samples is biased upwards): pass --num-samples "
                             f"{len(generated)} to score them against the test set anyway")
    else:
        generated, sampling = generate(args.model, num, args)

    weights = inception_weights(args.inception_weights, cache)
    features = FeatureCache(inception_extractor(weights), weights.sha256, cache / "features")
    style = {"size": args.render_size, "line_width": args.line_width}
    generated_features = features(render_all(generated, **style))

    real_features = {name: features(render_all(sketches, **style)) for name, sketches in test_sets.items() if sketches}

    def score(reference: np.ndarray, candidate: np.ndarray) -> dict:
        subset = args.kid_subset_size or min(1000, len(reference), len(candidate))
        return fid_kid_from_features(reference, candidate, kid_subset_size=subset)

    results = {name: score(real, generated_features) for name, real in real_features.items()}
    bad = [name for name, result in results.items() if not all(np.isfinite([result["fid"], result["kid_mean"]]))]
    if bad:
        raise FloatingPointError(f"FID/KID of the {', '.join(bad)} set is not finite; nothing written to {args.out}")
    for name, sketches in test_sets.items():
        if sketches:
            results[name]["stroke_statistics"] = stroke_statistics_distance(sketches, generated)

    floor = None
    if args.reference_floor:
        chosen = reference_floor_indices(split, len(test_sets["test"]), args.seed)
        floor_sets = load_split_sketches(data_file, {"train": chosen, "test": split["test"]}, cache / "datasets")
        floor = score(real_features["test"], features(render_all(floor_sets["train"], **style)))
        floor["stroke_statistics"] = stroke_statistics_distance(test_sets["test"], floor_sets["train"])
        floor["train_indices"] = f"{len(chosen)} train drawings not in test, chosen with seed {args.seed}"

    grid_path = Path(args.grid) if args.grid else Path(args.out).with_suffix(".grid.png")
    rows = 4
    reals = test_sets["test"][: rows * 4]
    fakes = generated[: rows * 4]
    tiles = []
    for r in range(rows):
        tiles += [render_image(s, size=128, line_width=2) for s in reals[r * 4 : r * 4 + 4]]
        tiles += [render_image(s, size=128, line_width=2) for s in fakes[r * 4 : r * 4 + 4]]
    write_bytes_atomic(grid_path, png_bytes(image_grid(tiles, columns=8)))

    metrics = {
        "category": args.category,
        "fid": results["test"]["fid"], "kid_mean": results["test"]["kid_mean"], "kid_std": results["test"]["kid_std"],
        "num_real": results["test"]["num_real"], "num_generated": len(generated),
        "results": results, "reference_floor": floor,
        "model": args.model, "generated_file": args.generated,
        "weights_sha256": weights_sha256(args.model) if args.model and Path(args.model).is_dir() else None,
        "data_file": {"path": str(data_file), "sha1": file_digest(data_file, "sha1")}, "split": split_source,
        "render": {"size": args.render_size, "line_width": args.line_width, "renderer": "pipeline.rendering.render_image"},
        "sampling": sampling,
        "inception_weights": {"source": weights.source, "source_sha256": weights.source_sha256,
                              "sha256": weights.sha256, "feature": "pool3 2048-d"},
        "kid_rng_seed": 2020, "libraries": library_versions(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_seconds": round(time.time() - started, 1), "grid": str(grid_path),
    }
    write_json_atomic(args.out, metrics)
    line = f"FID {metrics['fid']:.2f}  KID {metrics['kid_mean']:.4f} ± {metrics['kid_std']:.4f}"
    if floor:
        line += f"   (reference floor: FID {floor['fid']:.2f}, KID {floor['kid_mean']:.4f})"
    print(line)
    return metrics
