"""Stroke representations and conversions between them.

Three views of one sketch are used throughout the project:

* **Absolute strokes** (the canonical form): a list of ``(n_i, 2)`` float arrays of
  ``(x, y)`` points in *canvas pixels*, 0..255, y pointing down, as in the official
  Quick, Draw! simplified files.
* **Stroke-3 / stroke-5** (Sketch-RNN): one row per point. Stroke-3 rows are
  ``(dx, dy, lift)`` where ``lift == 1`` on the last point of each stroke. Stroke-5 rows
  are ``(dx, dy, p_down, p_lift, p_end)`` with a one-hot pen state and one final
  end-of-sketch row ``(0, 0, 0, 0, 1)``. Offsets are in canvas pixels; unlike the Sketch-RNN
  data files, the first row is the offset from the origin ``(0, 0)``, so absolute positions
  survive a round trip.
* **Resampled, normalised strokes**: each stroke resampled by arc length to a fixed
  number of points ``P`` and mapped to ``[-1, 1]`` (``u = px / 127.5 - 1``); a sketch is a
  ``(S, P, 2)`` float32 array. This is what the diffusion model sees.

This module depends on numpy only: it is copied next to ``pipeline.py`` in saved pipelines.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CANVAS_SIZE = 255.0  # official simplified coordinates span 0..255
_HALF = CANVAS_SIZE / 2.0


def pixels_to_unit(points: np.ndarray) -> np.ndarray:
    """Canvas pixels (0..255) -> normalised units ([-1, 1]). Any shape."""
    return np.asarray(points, dtype=np.float32) / _HALF - 1.0


def unit_to_pixels(points: np.ndarray) -> np.ndarray:
    """Normalised units ([-1, 1]) -> canvas pixels (0..255). Any shape."""
    return (np.asarray(points, dtype=np.float32) + 1.0) * _HALF


def as_stroke_list(strokes: Sequence, name: str = "strokes") -> list[np.ndarray]:
    """Validate and convert a sketch to a list of ``(n, 2)`` float32 point arrays.

    A stroke given as nested lists in the official layout, ``[xs, ys]`` or raw ``[xs, ys, ts]`` (two or three
    equally long lists of numbers), is read that way, even for two or three points: ``[[175, 255], [147, 168]]`` is
    the segment from (175, 147) to (255, 168). Other lists, and arrays, are read as ``(n, 2)`` points (an array of
    shape ``(2, n)`` or ``(3, n)`` with n > 2 is taken as the official layout). Raises ``ValueError`` naming
    ``name`` and the stroke on anything else.
    """
    if strokes is None or isinstance(strokes, (str, bytes)) or not hasattr(strokes, "__iter__"):
        raise ValueError(f"{name} must be a list of strokes, got {type(strokes).__name__}")
    result = []
    for i, stroke in enumerate(strokes):
        try:
            arr = np.asarray(stroke, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}[{i}] is not a numeric array: {exc}") from None
        official_lists = isinstance(stroke, (list, tuple)) and len(stroke) in (2, 3) and arr.ndim == 2
        if official_lists or (arr.ndim == 2 and arr.shape[0] in (2, 3) and arr.shape[1] > 2):
            arr = arr[:2].T
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{name}[{i}] must have shape (n, 2) or be [xs, ys]; got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name}[{i}] has no points")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}[{i}] contains NaN or infinite coordinates")
        result.append(np.ascontiguousarray(arr))
    return result


# ----------------------------------------------------------------------------- stroke-3 / stroke-5


def strokes_to_stroke3(strokes: Sequence[np.ndarray]) -> np.ndarray:
    """Absolute strokes (pixels) -> ``(N, 3)`` stroke-3 rows ``(dx, dy, lift)``, N = total points."""
    points = np.concatenate([np.asarray(s, dtype=np.float32) for s in strokes], axis=0)
    lift = np.zeros(len(points), dtype=np.float32)
    lift[np.cumsum([len(s) for s in strokes]) - 1] = 1.0
    offsets = np.diff(points, axis=0, prepend=np.zeros((1, 2), dtype=np.float32))
    return np.concatenate([offsets, lift[:, None]], axis=1)


def stroke3_to_strokes(stroke3: np.ndarray) -> list[np.ndarray]:
    """``(N, 3)`` stroke-3 rows -> absolute strokes (pixels). A trailing stroke without a lift is kept."""
    stroke3 = np.asarray(stroke3, dtype=np.float32)
    points = np.cumsum(stroke3[:, :2], axis=0)
    ends = np.flatnonzero(stroke3[:, 2] > 0.5) + 1
    return [s for s in np.split(points, ends) if len(s)]


def stroke3_to_stroke5(stroke3: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """Stroke-3 -> stroke-5 ``(max_len or N + 1, 5)``, padded with end-of-sketch rows ``(0, 0, 0, 0, 1)``."""
    stroke3 = np.asarray(stroke3, dtype=np.float32)
    n = len(stroke3)
    length = n + 1 if max_len is None else max_len
    if length < n + 1:
        raise ValueError(f"max_len={max_len} is shorter than the sketch ({n} points + end row)")
    out = np.zeros((length, 5), dtype=np.float32)
    out[:n, :2] = stroke3[:, :2]
    out[:n, 3] = stroke3[:, 2]
    out[:n, 2] = 1.0 - stroke3[:, 2]
    out[n:, 4] = 1.0
    return out


def stroke5_to_stroke3(stroke5: np.ndarray) -> np.ndarray:
    """Stroke-5 -> stroke-3, cut at the first end-of-sketch row."""
    stroke5 = np.asarray(stroke5, dtype=np.float32)
    end = np.flatnonzero(stroke5[:, 4] > 0.5)
    n = int(end[0]) if len(end) else len(stroke5)
    return np.concatenate([stroke5[:n, :2], stroke5[:n, 3:4]], axis=1)


# ----------------------------------------------------------------------------- geometry


def resample_stroke(points: np.ndarray, num_points: int) -> np.ndarray:
    """Resample an ``(n, 2)`` polyline to ``(num_points, 2)`` float32 points equally spaced by arc length, in the
    polyline's units. The first and last points are kept (corners between samples are cut); a single point, or a
    stroke of zero length, is repeated."""
    points = np.asarray(points, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if cum[-1] <= 0.0:
        return np.repeat(points[:1], num_points, axis=0).astype(np.float32)
    targets = np.linspace(0.0, cum[-1], num_points)
    x, y = np.interp(targets, cum, points[:, 0]), np.interp(targets, cum, points[:, 1])
    return np.stack([x, y], axis=1).astype(np.float32)


def strokes_to_normalized(strokes: Sequence[np.ndarray], num_points: int) -> np.ndarray:
    """Absolute strokes (pixels) -> ``(S, num_points, 2)`` float32 in [-1, 1], S = number of strokes, each
    resampled by ``resample_stroke``."""
    if len(strokes) == 0:
        return np.zeros((0, num_points, 2), dtype=np.float32)
    return pixels_to_unit(np.stack([resample_stroke(s, num_points) for s in strokes]))


def normalized_to_strokes(normalized: np.ndarray) -> list[np.ndarray]:
    """``(S, P, 2)`` normalised strokes -> list of S ``(P, 2)`` float32 arrays in canvas pixels 0..255."""
    return [unit_to_pixels(np.clip(s, -1.0, 1.0)) for s in np.asarray(normalized)]


def canvas_fit(strokes: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """The ``(origin (2,), scale)`` that maps strokes onto the canvas by ``(points - origin) * scale`` so the
    longer side spans 0..255 and the drawing touches the top and left edges (official convention)."""
    points = np.concatenate([np.asarray(s, dtype=np.float32) for s in strokes], axis=0)
    origin = points.min(axis=0)
    extent = float((points.max(axis=0) - origin).max())
    return origin, (CANVAS_SIZE / extent if extent > 0 else 1.0)


def fit_to_canvas(strokes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scale and shift strokes so the longer side spans 0..255, aligned to the top-left (official convention)."""
    origin, scale = canvas_fit(strokes)
    return [((np.asarray(s, dtype=np.float32) - origin) * scale).astype(np.float32) for s in strokes]


def rdp_keep(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on an ``(n, 2)`` polyline (epsilon in the points' units): the ``(n,)`` bool mask of the
    points it keeps, the first and last always.

    Distances are to the chord's infinite line, as in the official Quick, Draw! simplification: the tip
    of a stroke that turns back on itself can be dropped (official drawings show this too).
    """
    points = np.asarray(points, dtype=np.float32)
    if len(points) < 3:
        return np.ones(len(points), dtype=bool)
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        a, b = points[start], points[end]
        inner = points[start + 1 : end]
        ab = b - a
        norm = float(np.hypot(*ab))
        if norm == 0.0:
            dist = np.linalg.norm(inner - a, axis=1)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            split = start + 1 + i
            keep[split] = True
            stack += [(start, split), (split, end)]
    return keep


def rdp_keep_batch(points: np.ndarray, epsilon: float) -> np.ndarray:
    """``rdp_keep`` of every polyline of ``points (N, P, 2)`` at once: the ``(N, P)`` bool mask, the same as
    ``rdp_keep`` row by row. Each pass handles every open segment of every polyline (flat indices of its two ends):
    the segment splits at its farthest inner point beyond ``epsilon`` (the first one on ties), into two segments that
    the next pass reads, or closes. This is the recursion, one level at a time."""
    points = np.asarray(points, dtype=np.float32)
    n, p = points.shape[:2]
    keep = np.zeros((n, p), dtype=bool)
    keep[:, [0, -1]] = True
    flat, flat_keep = points.reshape(n * p, 2), keep.reshape(n * p)
    start = np.arange(n) * p if p >= 3 else np.zeros(0, dtype=np.int64)
    end = start + p - 1
    while len(start):
        inner = end - start - 1  # >= 1 for every open segment
        first = np.cumsum(inner) - inner  # each segment's first entry in the flat arrays below
        segment = np.repeat(np.arange(len(start)), inner)
        index = np.arange(len(segment)) - first[segment] + start[segment] + 1  # the inner points
        a, ab = flat[start][segment], (flat[end] - flat[start])[segment]
        d = flat[index] - a
        norm = np.hypot(ab[:, 0], ab[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(norm == 0.0, np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]),
                            np.abs(ab[:, 0] * d[:, 1] - ab[:, 1] * d[:, 0]) / norm)
        farthest = np.maximum.reduceat(dist, first)
        splits = farthest > epsilon
        at = np.minimum.reduceat(np.where(dist == farthest[segment], index, n * p), first)[splits]
        flat_keep[at] = True
        start = np.concatenate([start[splits], at])
        end = np.concatenate([at, end[splits]])
        start, end = start[end - start >= 2], end[end - start >= 2]
    return keep


def resample_batch(points: np.ndarray, keep: np.ndarray, num_points: int) -> np.ndarray:
    """``resample_stroke`` of the polylines ``points[i][keep[i]]`` of ``points (N, P, 2)``, all at once ->
    ``(N, num_points, 2)`` float32 (equal to the one-by-one result up to float rounding)."""
    n, p = keep.shape
    order = np.argsort(~keep, axis=1, kind="stable")  # the kept points first, in order
    pts = np.take_along_axis(np.asarray(points, dtype=np.float64), order[..., None], axis=1)
    count = keep.sum(axis=1)
    seg = np.where(np.arange(p - 1)[None, :] < (count - 1)[:, None], np.linalg.norm(np.diff(pts, axis=1), axis=2), 0.0)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(seg, axis=1)], axis=1)  # (N, P), flat after the last point
    total = cum[:, -1:]
    targets = np.arange(num_points)[None, :] * (total / max(num_points - 1, 1))
    targets[:, -1:] = total
    j = np.clip((cum[:, None, :] <= targets[:, :, None]).sum(axis=2) - 1, 0, p - 2)  # segment of each target
    j = np.minimum(j, np.maximum(count - 2, 0)[:, None])
    x0, x1 = np.take_along_axis(cum, j, 1), np.take_along_axis(cum, j + 1, 1)
    y0, y1 = np.take_along_axis(pts, j[..., None], 1), np.take_along_axis(pts, j[..., None] + 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(x1 > x0, (targets - x0) / (x1 - x0), 0.0)[..., None]
    out = np.where(targets[..., None] >= x1[..., None], y1, y0 + w * (y1 - y0))
    return out.astype(np.float32)


def rdp_simplify(points: np.ndarray, epsilon: float) -> np.ndarray:
    """The ``(m, 2)`` points of an ``(n, 2)`` polyline that Ramer-Douglas-Peucker keeps (``rdp_keep``)."""
    points = np.asarray(points, dtype=np.float32)
    return points[rdp_keep(points, epsilon)]


def raw_to_simplified(strokes: Sequence[np.ndarray], fit: bool = True, epsilon: float = 2.0) -> list[np.ndarray]:
    """Raw strokes -> the official simplified form: fit to 0..255 (any input units; skipped with
    ``fit=False``, for strokes already in canvas pixels), RDP with ``epsilon`` pixels (official: 2), integer pixels."""
    fitted = fit_to_canvas(strokes) if fit else strokes
    return [np.round(rdp_simplify(s, epsilon)).astype(np.float32) for s in fitted]


def raw_to_simplified_batch(sketches: Sequence[Sequence[np.ndarray]], fit: bool = True, epsilon: float = 2.0
                            ) -> list[list[np.ndarray]]:
    """``raw_to_simplified`` of many sketches at once, the same result: every stroke of every sketch must have the
    same number of points (as the pipeline's resampled strokes do)."""
    counts = np.array([len(sketch) for sketch in sketches], dtype=np.int64)
    if not counts.sum():
        return [[] for _ in sketches]
    stacked = np.stack([np.asarray(stroke, dtype=np.float32) for sketch in sketches for stroke in sketch])  # (M, P, 2)
    if fit:  # canvas_fit of each sketch, from its strokes' extremes, in canvas_fit's float32 arithmetic
        nonempty = counts[counts > 0]
        first = np.cumsum(nonempty) - nonempty  # each non-empty sketch's first stroke
        origin = np.minimum.reduceat(stacked.min(axis=1), first)  # (sketches, 2)
        extent = (np.maximum.reduceat(stacked.max(axis=1), first) - origin).max(axis=1).astype(np.float64)
        scale = (CANVAS_SIZE / np.where(extent > 0, extent, CANVAS_SIZE)).astype(np.float32)  # 1 for zero extent
        stacked = (stacked - np.repeat(origin, nonempty, axis=0)[:, None]) * np.repeat(scale, nonempty)[:, None, None]
    keep = rdp_keep_batch(stacked, epsilon)
    simplified = np.split(np.round(stacked[keep]), np.cumsum(keep.sum(axis=1))[:-1])
    ends = np.cumsum(counts)
    return [simplified[end - count : end] for count, end in zip(counts.tolist(), ends.tolist())]


def simplify_normalized(strokes: np.ndarray, epsilon: float = 2.0) -> np.ndarray:
    """``(N, P, 2)`` strokes in [-1, 1] -> float32 copies RDP-simplified (``epsilon`` in canvas pixels) and
    resampled back to P points: the piecewise-linear form that resampled training strokes have. The pipeline
    does this to every stroke it draws before the history encoder reads it."""
    strokes = np.asarray(strokes, dtype=np.float32)
    if len(strokes) == 0:
        return strokes.copy()
    pixels = unit_to_pixels(strokes)
    return pixels_to_unit(resample_batch(pixels, rdp_keep_batch(pixels, epsilon), strokes.shape[1]))


def pack_sketches(sketches: Sequence[Sequence[np.ndarray]], num_points: int, max_strokes: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample (``resample_stroke``) and pad sketches for the model.

    Returns ``strokes (N, max_strokes, num_points, 2)`` float32 in [-1, 1] (zero padded),
    ``lengths (N,)`` stroke counts, and ``kept (M,)`` the indices of the input sketches used: sketches
    with more than ``max_strokes`` strokes, or none, are left out.
    """
    kept = np.array([i for i, s in enumerate(sketches) if 0 < len(s) <= max_strokes], dtype=np.int64)
    strokes = np.zeros((len(kept), max_strokes, num_points, 2), dtype=np.float32)
    lengths = np.zeros(len(kept), dtype=np.int64)
    for row, i in enumerate(kept):
        packed = strokes_to_normalized(sketches[i], num_points)
        strokes[row, : len(packed)] = packed
        lengths[row] = len(packed)
    return strokes, lengths, kept
