"""What produced a result: library versions and the weights' checksum, recorded in provenance.json and metrics.json."""

from __future__ import annotations

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
    """sha256 of a pipeline folder's transformer weights: what ``metrics.json`` records it was computed for."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME

    return file_digest(Path(model_dir) / "transformer" / SAFETENSORS_WEIGHTS_NAME)
