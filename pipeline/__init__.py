"""Stroke-by-stroke sketch diffusion for Quick, Draw! (cat, bus, rabbit), as a diffusers pipeline.

What a Hub model folder carries: the pipeline, the model, the stroke representation and rendering. Heavy modules
(torch, diffusers) load on first use, so importing ``pipeline.representation`` alone stays light.
"""

__version__ = "0.1.0"

_LAZY = {
    "StrokeDiffusionPipeline": ".pipeline_stroke_diffusion",
    "StrokeDiffusionOutput": ".pipeline_stroke_diffusion",
    "StrokeDiffusionModel": ".modeling_stroke_diffusion",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
