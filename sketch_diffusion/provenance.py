"""What produced a result: library versions, recorded in provenance.json and metrics.json."""

from __future__ import annotations

import platform
from importlib import metadata

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
