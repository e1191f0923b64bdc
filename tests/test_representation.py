import numpy as np
import pytest

from conftest import CATEGORIES, needs_shared, raw_sample, simplified_sample
from pipeline.data import load_strokes
from pipeline.representation import (
    as_stroke_list, join_pieces, normalized_to_strokes, pack_sketches, pixels_to_unit, raw_to_simplified,
    resample_stroke, split_long_strokes, split_stroke, stroke3_to_stroke5, stroke3_to_strokes, stroke5_to_stroke3,
    strokes_to_normalized, strokes_to_stroke3, unit_to_pixels)


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


def test_resample_keeping_vertices_puts_every_corner_on_a_point():
    zigzag = np.array([[0, 0], [30, 0], [30, 10], [30, 10], [0, 40], [3, 41]], dtype=np.float32)  # a repeated point
    r = resample_stroke(zigzag, 16, "vertices")
    assert r.shape == (16, 2)
    distinct = zigzag[[0, 1, 2, 4, 5]]
    hits = [int(np.argmin(np.linalg.norm(r - v, axis=1))) for v in distinct]
    np.testing.assert_allclose(r[hits], distinct, atol=1e-5)  # every distinct vertex is a point ...
    assert hits == sorted(hits) and hits[0] == 0 and hits[-1] == 15  # ... in drawing order, ends kept
    steps = np.linalg.norm(np.diff(r, axis=0), axis=1)
    assert steps.min() > 0 and steps.max() < 2 * steps.mean()  # the other points spread along the segments
    from pipeline.representation import rdp_simplify

    np.testing.assert_allclose(rdp_simplify(r, 2.0), rdp_simplify(distinct, 2.0), atol=1e-4)  # corners survive
    uniform = resample_stroke(zigzag, 16)
    assert np.min(np.linalg.norm(uniform - [30, 0], axis=1)) > 1.0  # equal spacing cuts the first corner
    many = np.stack([np.arange(40.0), np.arange(40.0) % 2 * 5], axis=1)  # more vertices than points
    np.testing.assert_array_equal(resample_stroke(many, 16, "vertices"), resample_stroke(many, 16))
    np.testing.assert_array_equal(resample_stroke(np.array([[5.0, 7.0]] * 3), 4, "vertices"), [[5, 7]] * 4)


def test_padded_vertices_are_the_vertices_then_copies_of_the_last():
    zigzag = np.array([[0, 0], [30, 0], [30, 10], [30, 10], [0, 40], [3, 41]], dtype=np.float32)  # a repeated point
    r = resample_stroke(zigzag, 8, "padded_vertices")
    np.testing.assert_array_equal(r, zigzag[[0, 1, 2, 4, 5, 5, 5, 5]])
    from pipeline.representation import rdp_simplify

    np.testing.assert_array_equal(rdp_simplify(r, 0.5), zigzag[[0, 1, 2, 4, 5]])  # simplification drops the copies
    many = np.stack([np.arange(40.0), np.arange(40.0) % 2 * 5], axis=1)  # more vertices than points
    np.testing.assert_array_equal(resample_stroke(many, 16, "padded_vertices"), resample_stroke(many, 16))
    np.testing.assert_array_equal(resample_stroke(np.array([[5.0, 7.0]] * 3), 4, "padded_vertices"), [[5, 7]] * 4)
    with pytest.raises(ValueError, match="resampling must be one of .*'padded'"):
        resample_stroke(zigzag, 8, "padded")


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_vertex_resamplings_keep_every_vertex_of_real_drawings(category):
    for sketch in load_strokes(simplified_sample(category)):
        for stroke in sketch:
            if len(stroke) > 32:
                continue
            for resampling in ("vertices", "padded_vertices"):
                r = resample_stroke(stroke, 32, resampling)
                assert np.min(np.linalg.norm(r[:, None] - stroke[None], axis=2), axis=0).max() < 1e-3


def test_pixel_unit_mapping():
    np.testing.assert_allclose(pixels_to_unit([0, 127.5, 255]), [-1, 0, 1])
    np.testing.assert_allclose(unit_to_pixels(pixels_to_unit([3.0, 200.0])), [3.0, 200.0], rtol=1e-6)


@needs_shared
@pytest.mark.parametrize("category", CATEGORIES)
def test_raw_to_simplified_matches_official_simplification(category):
    raw = load_strokes(raw_sample(category), kind="raw")
    simplified = load_strokes(simplified_sample(category))
    for r, s in zip(raw, simplified):
        ours = raw_to_simplified(r)
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


def test_split_stroke_cuts_equal_pieces_that_share_their_cut_points():
    stroke = np.array([[0, 0], [100, 0], [100, 50], [40, 50]], dtype=np.float32)  # 210 px long
    pieces = split_stroke(stroke, 80.0)
    assert len(pieces) == 3  # the fewest pieces of at most 80 px
    lengths = [np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in pieces]
    np.testing.assert_allclose(lengths, 70.0, atol=1e-4)
    for before, after in zip(pieces[:-1], pieces[1:]):
        np.testing.assert_array_equal(before[-1], after[0])
    joined = np.concatenate([pieces[0]] + [p[1:] for p in pieces[1:]])
    for vertex in stroke:  # every vertex survives between the cut points
        assert np.any(np.all(np.isclose(joined, vertex), axis=1))
    np.testing.assert_array_equal(joined[[0, -1]], stroke[[0, -1]])
    assert len(split_stroke(stroke, 0.0)) == len(split_stroke(stroke, 210.0)) == 1
    assert len(split_stroke(stroke[:1], 10.0)) == 1  # a dot has no length to cut


def test_join_pieces_undoes_split_long_strokes():
    strokes = [np.array([[0, 0], [100, 0], [100, 50], [40, 50]], np.float32),
               np.array([[0, 90], [30, 90]], np.float32)]
    pieces = split_long_strokes(strokes, 80.0)
    assert len(pieces) == 4
    joined = join_pieces(pieces, tolerance=0.5)
    assert len(joined) == 2  # the second stroke starts 40 px from the first one's end: not a piece of it
    np.testing.assert_array_equal(joined[1], strokes[1])
    assert len(joined[0]) == len(strokes[0]) + 2  # the two cut points
    np.testing.assert_array_equal(joined[0][[0, 2, 4, 5]], strokes[0])  # cuts at (70, 0), (100, 40)
    moved = [pieces[0], pieces[1] + 3.0]  # a model's piece that starts 4.2 px from where the last one ended
    assert len(join_pieces(moved, tolerance=4.0)) == 2 and len(join_pieces(moved, tolerance=5.0)) == 1
    np.testing.assert_array_equal(join_pieces(moved, tolerance=5.0)[0][len(pieces[0]) - 1], pieces[0][-1])
    # a model that says which strokes continue (link_pieces) decides, whatever the distance
    assert [len(s) for s in join_pieces(pieces, links=[False, True, True, False])] == [6, 2]
    assert [len(s) for s in join_pieces(pieces, links=[False, False, False, True])] == [2, 3, 4]  # 40 px apart
    assert len(join_pieces(moved, tolerance=0.0, links=[False, True])) == 1


def test_pack_sketches_counts_pieces_against_max_strokes():
    long_line = np.array([[0, 0], [250, 0]], dtype=np.float32)
    short_line = np.array([[0, 10], [50, 10]], dtype=np.float32)
    assert len(split_long_strokes([long_line, short_line], 100.0)) == 4
    strokes, lengths, kept = pack_sketches([[long_line, short_line], [short_line]], num_points=8, max_strokes=3,
                                           max_stroke_length=100.0)
    assert kept.tolist() == [1] and lengths.tolist() == [1]  # 3 pieces + 1 stroke > 3
    strokes, lengths, kept = pack_sketches([[long_line, short_line]], num_points=8, max_strokes=4,
                                           max_stroke_length=100.0)
    assert lengths.tolist() == [4]
    np.testing.assert_allclose(unit_to_pixels(strokes[0, 0, [0, -1], 0]), [0.0, 250.0 / 3], atol=1e-3)


@pytest.mark.parametrize("bad, message", [("abc", "list of strokes"), ([[]], "shape"), ([np.zeros((0, 2))], "no points"),
                                          ([[[0, np.nan]]], "NaN"), ([[[1, 2, 3]]], "shape")])
def test_as_stroke_list_rejects_malformed(bad, message):
    with pytest.raises(ValueError, match=message):
        as_stroke_list(bad, "prefix_strokes")


def test_as_stroke_list_accepts_official_layout():
    out = as_stroke_list([[[1, 2, 3], [4, 5, 6]]])
    np.testing.assert_array_equal(out[0], [[1, 4], [2, 5], [3, 6]])


def test_rdp_drops_nearly_collinear_points_and_keeps_corners():
    from pipeline.representation import rdp_simplify

    corner = np.array([[0, 0], [5, 0.5], [10, 0], [10, 5], [10, 10]], dtype=np.float32)
    np.testing.assert_array_equal(rdp_simplify(corner, 2.0), corner[[0, 2, 4]])
    line = np.array([[0, 0], [1, 1.01], [2, 2], [3, 3.02], [10, 10]], dtype=np.float32)
    np.testing.assert_array_equal(rdp_simplify(line, 2.0), line[[0, -1]])


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
    from pipeline.representation import pixels_to_unit, simplify_normalized, unit_to_pixels

    corner = l_stroke(32)
    wiggly = corner + np.random.default_rng(0).normal(0, 0.5, corner.shape)  # well under epsilon = 2 px
    out = unit_to_pixels(simplify_normalized(pixels_to_unit(np.stack([corner, wiggly]) + 20)))
    assert out.shape == (2, 32, 2)
    for stroke in out:
        np.testing.assert_allclose(stroke[[0, -1]] - 20, [[0, 0], [100, 100]], atol=2.0)  # ends kept
        assert distance_to_l_legs(stroke, 20) < 2.5
    assert count_bends(wiggly) > 20 and count_bends(out[1]) <= 2  # straight legs: only the corner bends


def test_smooth_strokes_removes_jitter_keeps_ends_and_straight_lines():
    from pipeline.representation import smooth_strokes

    t = np.linspace(0, 1, 32, dtype=np.float32)[:, None]
    line = np.hstack([200 * t, 50 * t + 10])  # equally spaced points on a straight line
    jitter = np.zeros_like(line)
    jitter[1:-1:2, 1], jitter[2:-1:2, 1] = 1.0, -1.0  # +-1 px, alternating: the worst point-to-point wiggle
    strokes = np.stack([line, line + jitter])
    out = smooth_strokes(strokes, 1)
    assert out.shape == strokes.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0], line, atol=1e-4)  # a straight line does not move
    np.testing.assert_array_equal(out[:, [0, -1]], strokes[:, [0, -1]])  # both ends stay
    assert np.abs(out[1] - line)[2:-2].max() < 1e-4  # one pass cancels an alternating wiggle inside the stroke
    np.testing.assert_array_equal(smooth_strokes(strokes, 0), strokes)  # 0 passes: a copy, unchanged
    assert np.abs(smooth_strokes(strokes, 3)[1] - line).max() < np.abs(jitter).max()
    two_points = np.array([[[0, 0], [5, 5]]], dtype=np.float32)
    np.testing.assert_array_equal(smooth_strokes(two_points, 2), two_points)  # nothing between the ends


def test_clean_denoised_strokes_smooths_before_simplifying():
    from pipeline.representation import clean_denoised_strokes, pixels_to_unit, smooth_strokes, unit_to_pixels

    corner = l_stroke(64)
    jitter = np.zeros_like(corner)
    jitter[1:-1:2], jitter[2:-1:2] = 3.0, -3.0  # +-3 px, alternating: more than the 2 px RDP tolerance lets through
    stroke = pixels_to_unit(corner + jitter + 20)[None]

    cleaned = unit_to_pixels(clean_denoised_strokes(stroke, smoothing_passes=1))[0]
    assert cleaned.shape == (64, 2) and count_bends(cleaned) <= 2 and distance_to_l_legs(cleaned, 20) < 2.0  # the L
    unsmoothed = unit_to_pixels(clean_denoised_strokes(stroke, smoothing_passes=0))[0]
    assert count_bends(unsmoothed) > 20  # the jitter survives simplification alone
    smoothed_only = clean_denoised_strokes(stroke, smoothing_passes=1, simplify=False)  # not simplified, not resampled
    np.testing.assert_array_equal(smoothed_only, smooth_strokes(stroke, 1))
