import numpy as np
import pytest

from conftest import CATEGORIES, needs_shared, raw_sample, simplified_sample
from sketch_diffusion.data import load_strokes, read_drawings
from pipeline.representation import (
    as_stroke_list, normalized_to_strokes, pack_sketches, pixels_to_unit, raw_to_simplified, raw_to_simplified_batch,
    rdp_keep, rdp_keep_batch, rdp_simplify, resample_batch, resample_stroke, simplify_normalized, stroke3_to_stroke5,
    stroke3_to_strokes, stroke5_to_stroke3, strokes_to_normalized, strokes_to_stroke3, unit_to_pixels)


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_stroke3_and_stroke5_round_trip_real_sketches(category):
    for sketch in load_strokes(simplified_sample(category)):
        s3 = strokes_to_stroke3(sketch)
        assert s3.shape == (sum(len(s) for s in sketch), 3)
        assert s3[:, 2].sum() == len(sketch)
        back = stroke3_to_strokes(s3)
        assert len(back) == len(sketch)
        for a, b in zip(back, sketch):
            np.testing.assert_allclose(a, b, atol=1e-4)
        s5 = stroke3_to_stroke5(s3, max_len=len(s3) + 7)
        assert s5.shape == (len(s3) + 7, 5)
        np.testing.assert_array_equal(s5[:, 2:].sum(axis=1), 1.0)  # one-hot pen states
        assert (s5[len(s3):, 4] == 1).all()
        np.testing.assert_array_equal(stroke5_to_stroke3(s5), s3)


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_resampled_normalised_round_trip_keeps_shape(category):
    for sketch in load_strokes(simplified_sample(category)):
        norm = strokes_to_normalized(sketch, 64)
        assert norm.shape == (len(sketch), 64, 2) and norm.dtype == np.float32
        assert norm.min() >= -1 and norm.max() <= 1
        back = normalized_to_strokes(norm)
        for original, resampled in zip(sketch, back):
            # endpoints are kept exactly; every resampled point lies on the original polyline
            np.testing.assert_allclose(resampled[[0, -1]], original[[0, -1]], atol=1e-3)
            dense = resample_stroke(original, 2000)
            nearest = np.min(np.linalg.norm(resampled[:, None] - dense[None], axis=2), axis=1)
            assert nearest.max() < 1.0  # pixels


def test_resample_is_uniform_in_arc_length_and_handles_dots():
    line = np.array([[0, 0], [10, 0], [10, 30]], dtype=np.float32)
    r = resample_stroke(line, 5)
    np.testing.assert_allclose(np.linalg.norm(np.diff(r, axis=0), axis=1), 10.0, atol=1e-4)
    dot = resample_stroke(np.array([[5.0, 7.0]]), 4)
    np.testing.assert_array_equal(dot, [[5, 7]] * 4)





def test_pixel_unit_mapping():
    np.testing.assert_allclose(pixels_to_unit([0, 127.5, 255]), [-1, 0, 1])
    np.testing.assert_allclose(unit_to_pixels(pixels_to_unit([3.0, 200.0])), [3.0, 200.0], rtol=1e-6)


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_raw_to_simplified_matches_official_simplification(category):
    raw = [[np.asarray(stroke[:2], np.float32).T for stroke in record["drawing"]]  # raw pixels, times dropped
           for record in read_drawings(raw_sample(category), kind="raw")]
    simplified = load_strokes(simplified_sample(category))
    loaded = load_strokes(raw_sample(category), kind="raw")  # raw records come back in the simplified form
    assert len(loaded) == len(raw) >= 1
    for r, s, l in zip(raw, simplified, loaded):
        ours = raw_to_simplified(r)
        assert len(l) == len(ours) and all(np.array_equal(a, b) for a, b in zip(l, ours))
        assert len(ours) == len(s)
        pts_ours, pts_official = np.concatenate(ours), np.concatenate(s)
        # same canvas: both span 0..255 on their longer side, top-left aligned
        np.testing.assert_allclose(pts_ours.min(0), pts_official.min(0), atol=1.0)
        # the official pipeline also resamples at 1 px before RDP, so extents may differ by a pixel or two
        np.testing.assert_allclose(pts_ours.max(0), pts_official.max(0), atol=3.0)
        assert abs(len(pts_ours) - len(pts_official)) <= 0.25 * len(pts_official) + 3


def test_pack_sketches_filters_long_sketches():
    dot = np.zeros((1, 2), dtype=np.float32)
    sketches = [[dot] * 3, [dot] * 5, [dot]]
    strokes, lengths, kept = pack_sketches(sketches, num_points=4, max_strokes=4)
    assert strokes.shape == (2, 4, 4, 2)
    assert lengths.tolist() == [3, 1] and kept.tolist() == [0, 2]





@pytest.mark.parametrize("bad, message", [("abc", "list of strokes"), ([[]], "shape"), ([np.zeros((0, 2))], "no points"),
                                          ([[[0, np.nan]]], "NaN"), ([[[1, 2, 3]]], "shape")])
def test_as_stroke_list_rejects_malformed(bad, message):
    with pytest.raises(ValueError, match=message):
        as_stroke_list(bad, "prefix_strokes")


def test_as_stroke_list_reads_nested_lists_as_the_official_layout_and_arrays_as_points():
    out = as_stroke_list([[[1, 2, 3], [4, 5, 6]]])
    np.testing.assert_array_equal(out[0], [[1, 4], [2, 5], [3, 6]])
    # two or three equally long lists are [xs, ys] or raw [xs, ys, ts], however few points they hold
    segment, raw = as_stroke_list([[[175, 255], [147, 168]], [[10, 20, 30], [40, 50, 60], [0, 16, 33]]])
    np.testing.assert_array_equal(segment, [[175, 147], [255, 168]])
    np.testing.assert_array_equal(raw, [[10, 40], [20, 50], [30, 60]])  # the timestamps are dropped
    # an array is (n, 2) points, even a square one
    points, = as_stroke_list([np.array([[175, 255], [147, 168]])])
    np.testing.assert_array_equal(points, [[175, 255], [147, 168]])
    assert all(s.dtype == np.float32 and s.shape[1] == 2 for s in (segment, raw, points))


def test_rdp_drops_nearly_collinear_points_and_keeps_corners():
    corner = np.array([[0, 0], [5, 0.5], [10, 0], [10, 5], [10, 10]], dtype=np.float32)
    np.testing.assert_array_equal(rdp_simplify(corner, 2.0), corner[[0, 2, 4]])
    line = np.array([[0, 0], [1, 1.01], [2, 2], [3, 3.02], [10, 10]], dtype=np.float32)
    np.testing.assert_array_equal(rdp_simplify(line, 2.0), line[[0, -1]])


def random_polylines(num: int = 400, points: int = 32) -> np.ndarray:
    """``(num, points, 2)`` float32 pixels: random walks of many scales, with dots, straight lines and ties among them."""
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(size=(num, points, 2)) * rng.uniform(0.1, 20, (num, 1, 1)), axis=1) + 128
    walks[:20] = walks[:20, :1]  # dots: every point the same
    walks[20:40, :, 1] = 100  # horizontal lines
    walks[40:80] = np.round(walks[40:80] / 8) * 8  # coarse grids: equally far points (ties)
    return walks.astype(np.float32)


def test_batched_rdp_and_resampling_equal_the_one_by_one_versions():
    polylines = random_polylines()
    keep = rdp_keep_batch(polylines, 2.0)
    np.testing.assert_array_equal(keep, np.stack([rdp_keep(p, 2.0) for p in polylines]))
    one_by_one = np.stack([resample_stroke(p[k], 16) for p, k in zip(polylines, keep)])
    np.testing.assert_allclose(resample_batch(polylines, keep, 16), one_by_one, rtol=0, atol=1e-4)
    for points in (1, 2, 3, 5):  # polylines with no inner point, one, a few
        short = random_polylines(100, points)
        np.testing.assert_array_equal(rdp_keep_batch(short, 2.0), np.stack([rdp_keep(p, 2.0) for p in short]))
    assert rdp_keep_batch(np.zeros((0, 32, 2), np.float32), 2.0).shape == (0, 32)
    dot = np.full((polylines.shape[1], 2), 7.0, dtype=np.float32)  # a sketch of zero extent: scale 1
    sketches = [[]] + [list(polylines[i : i + 5]) for i in range(0, 40, 5)] + [[], [dot, dot], list(polylines[40:41])]
    for fit in (True, False):
        batched = raw_to_simplified_batch(sketches, fit=fit)
        assert len(batched) == len(sketches)
        for simplified, sketch in zip(batched, sketches):
            expected = raw_to_simplified(sketch, fit=fit) if sketch else []
            assert len(simplified) == len(expected) and all(np.array_equal(a, b) for a, b in zip(simplified, expected))


def l_stroke(num_points: int) -> np.ndarray:
    """``(num_points, 2)`` pixels: (0, 0) -> (100, 0) -> (100, 100), equally spaced, the corner at the middle."""
    t = np.linspace(0, 1, num_points, dtype=np.float32)
    return np.where(t[:, None] < 0.5, np.stack([t * 200, 0 * t], 1), np.stack([100 + 0 * t, (t - 0.5) * 200], 1))


def distance_to_l_legs(stroke: np.ndarray, offset: float) -> float:
    """The largest distance (pixels) of ``stroke``'s points to the straight legs of ``l_stroke`` moved by ``offset``."""
    return float(np.minimum(np.abs(stroke[:, 1] - offset), np.abs(stroke[:, 0] - 100 - offset)).max())


def count_bends(stroke: np.ndarray) -> int:
    """Points of ``(P, 2)`` ``stroke`` where it bends (second difference above 0.1 px): 1 for a clean corner."""
    return int((np.abs(np.diff(stroke, 2, axis=0)).max(axis=1) > 0.1).sum())


def test_simplify_normalized_removes_wiggles_and_keeps_corners():
    corner = l_stroke(32)
    wiggly = corner + np.random.default_rng(0).normal(0, 0.5, corner.shape)  # well under epsilon = 2 px
    out = unit_to_pixels(simplify_normalized(pixels_to_unit(np.stack([corner, wiggly]) + 20)))
    assert out.shape == (2, 32, 2)
    for stroke in out:
        np.testing.assert_allclose(stroke[[0, -1]] - 20, [[0, 0], [100, 100]], atol=2.0)  # ends kept
        assert distance_to_l_legs(stroke, 20) < 2.5
    assert count_bends(wiggly) > 20 and count_bends(out[1]) <= 2  # straight legs: only the corner bends

