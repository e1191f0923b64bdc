"""Render sketches to PNG (PIL), SVG, animated GIF, and the official ndjson schema.

Inputs are absolute strokes: a list of ``(n_i, 2)`` arrays in canvas pixels 0..255 (see
``representation``). Raster output is black ink on white, greyscale (mode ``"L"``), anti-aliased by
drawing at ``supersample`` times the size and downscaling with a box filter, which is
deterministic: the same strokes give identical bytes.

Functions here return images, bytes or strings; callers decide where to write them.
This module is copied next to ``pipeline.py`` in saved pipelines.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .representation import CANVAS_SIZE

DEFAULT_SIZE = 256
DEFAULT_LINE_WIDTH = 3.0
DEFAULT_PADDING = 8.0  # output pixels of white margin around the 0..255 canvas


def _canvas_transform(size: int, padding: float) -> tuple[float, float]:
    scale = (size - 2 * padding) / CANVAS_SIZE
    return scale, padding


def render_image(
    strokes: Sequence[np.ndarray],
    size: int = DEFAULT_SIZE,
    line_width: float = DEFAULT_LINE_WIDTH,
    padding: float = DEFAULT_PADDING,
    supersample: int = 4,
) -> Image.Image:
    """Draw strokes (canvas pixels) on a ``size`` x ``size`` white image; ``line_width`` in output pixels."""
    big = size * supersample
    scale, offset = _canvas_transform(size, padding)
    image = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(image)
    width = max(1, int(round(line_width * supersample)))
    radius = width / 2.0
    for stroke in strokes:
        pts = (np.asarray(stroke, dtype=np.float64) * scale + offset) * supersample
        xy = [tuple(p) for p in pts.tolist()]
        if len(xy) > 1:
            draw.line(xy, fill=0, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps (and dots for single-point strokes)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    return image.resize((size, size), Image.Resampling.BOX)


def png_bytes(image: Image.Image) -> bytes:
    """PNG-encode a PIL image (lossless, deterministic)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_progress(strokes: Sequence[np.ndarray], **render_kwargs) -> list[Image.Image]:
    """One image per stroke: the canvas after strokes ``1..k`` for k = 1..len(strokes)."""
    return [render_image(strokes[: k + 1], **render_kwargs) for k in range(len(strokes))]


def image_grid(images: Sequence[Image.Image], columns: int | None = None, gap: int = 2) -> Image.Image:
    """Tile equally sized images in a grid (row-major) with ``gap`` grey pixels between them."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    w, h = images[0].size
    grid = Image.new("L", (columns * w + (columns - 1) * gap, rows * h + (rows - 1) * gap), 160)
    for i, img in enumerate(images):
        grid.paste(img.convert("L"), ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return grid


def gif_bytes(frames: Sequence[Image.Image], frame_ms: int = 250, final_ms: int = 1500) -> bytes:
    """Encode frames as a looping animated GIF; the last frame is held for ``final_ms``."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("gif_bytes needs at least one frame")
    arrays = [np.asarray(f.convert("L")) for f in frames]
    durations = [frame_ms] * (len(arrays) - 1) + [final_ms]
    buffer = io.BytesIO()
    iio.imwrite(buffer, np.stack(arrays), extension=".gif", duration=durations, loop=0)
    return buffer.getvalue()


def sketch_gif(strokes: Sequence[np.ndarray], frame_ms: int = 250, **render_kwargs) -> bytes:
    """Animated GIF drawing the sketch stroke by stroke (one frame per stroke, a blank first frame)."""
    blank = render_image([], **render_kwargs)
    return gif_bytes([blank, *render_progress(strokes, **render_kwargs)], frame_ms=frame_ms)


def sketches_gif(sketches: Sequence[Sequence[np.ndarray]], columns: int | None = None, frame_ms: int = 250,
                 **render_kwargs) -> bytes:
    """Animated GIF of several sketches drawn side by side, stroke by stroke, in a grid."""
    longest = max(len(s) for s in sketches)
    frames = [
        image_grid([render_image(s[:k], **render_kwargs) for s in sketches], columns)
        for k in range(longest + 1)
    ]
    return gif_bytes(frames, frame_ms=frame_ms)


def render_svg(strokes: Sequence[np.ndarray], size: int = DEFAULT_SIZE, line_width: float = DEFAULT_LINE_WIDTH,
               padding: float = DEFAULT_PADDING) -> str:
    """SVG document with one ``<polyline>`` per stroke, in the same geometry as ``render_image``."""
    scale, offset = _canvas_transform(size, padding)
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect width="{size}" height="{size}" fill="white"/>',
        f'<g fill="none" stroke="black" stroke-width="{line_width:g}" stroke-linecap="round" stroke-linejoin="round">',
    ]
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64) * scale + offset
        if len(pts) == 1:
            pts = np.repeat(pts, 2, axis=0)
        lines.append('<polyline points="' + " ".join(f"{x:.2f},{y:.2f}" for x, y in pts) + '"/>')
    lines += ["</g>", "</svg>"]
    return "\n".join(lines) + "\n"
