"""What produced a result: library versions and the weights' checksum, recorded in provenance.json and metrics.json."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path

from .fileio import file_digest

PACKAGES = ("torch", "diffusers", "accelerate", "datasets", "huggingface_hub", "torch-fidelity", "numpy", "gradio")


def library_versions() -> dict[str, str]:
    """Python and the project's main libraries (those installed), by distribution name."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def weights_sha256(model_dir: str | os.PathLike) -> str:
    """What ``metrics.json`` records it was computed for: the sha256 of a pipeline folder's transformer weights, or,
    in a folder with a distilled transformer too, the sha256 of both files' sha256 digests (hex, joined by a space)."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME

    digest = file_digest(Path(model_dir) / "transformer" / SAFETENSORS_WEIGHTS_NAME)
    distilled = Path(model_dir) / "distilled_transformer" / SAFETENSORS_WEIGHTS_NAME
    if not distilled.is_file():
        return digest
    return hashlib.sha256(f"{digest} {file_digest(distilled)}".encode()).hexdigest()
