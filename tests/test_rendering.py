import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import needs_shared, simplified_sample
from pipeline import rendering
from sketch_diffusion.data import load_strokes, read_drawings, record_strokes, to_ndjson_record


@pytest.fixture
def cat():
    if not simplified_sample("cat").is_file():
        pytest.skip("the real samples live in ../shared")
    return load_strokes(simplified_sample("cat"))[0]


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@needs_shared
def test_png_is_deterministic_antialiased_and_sized(cat):
    a = rendering.render_image(cat, size=128, line_width=2)
    b = rendering.render_image(cat, size=128, line_width=2)
    assert png_bytes(a) == png_bytes(b)
    assert a.size == (128, 128) and a.mode == "L"
    values = np.unique(np.asarray(a))
    assert values.min() < 30 and values.max() == 255
    assert len(values) > 10  # grey edge pixels: anti-aliased
    thick = np.asarray(rendering.render_image(cat, size=128, line_width=6))
    assert (thick < 128).sum() > 2 * (np.asarray(a) < 128).sum()


@needs_shared
def test_ink_lands_where_the_strokes_are(cat):
    image = np.asarray(rendering.render_image([cat[0]], size=256, line_width=3, padding=0))
    x, y = (cat[0][len(cat[0]) // 2] * 255 / 255).astype(int)
    assert image[min(y, 255), min(x, 255)] < 128
    assert image[5, 250] == 255 or image[250, 5] == 255


@needs_shared
def test_gif_draws_one_stroke_per_frame(cat):
    gif = Image.open(io.BytesIO(rendering.sketch_gif(cat, size=96)))
    assert gif.n_frames == len(cat) + 1
    ink = []
    for i in range(gif.n_frames):
        gif.seek(i)
        ink.append(int((np.asarray(gif.convert("L")) < 128).sum()))
    assert ink[0] == 0 and all(b >= a for a, b in zip(ink, ink[1:])) and ink[-1] > 0


@needs_shared
def test_svg_has_one_polyline_per_stroke(cat):
    svg = rendering.render_svg(cat)
    assert svg.startswith("<svg") and svg.count("<polyline") == len(cat)


@needs_shared
def test_ndjson_export_reads_back_in_official_schema(tmp_path, cat):
    record = to_ndjson_record(cat, word="cat", key_id="g-1", source="test")
    path = tmp_path / "out.ndjson"
    path.write_text(json.dumps(record) + "\n")
    back = next(read_drawings(path, kind="simplified"))
    assert back["countrycode"] == "ZZ" and back["source"] == "test"
    for a, b in zip(record_strokes(back), cat):
        np.testing.assert_array_equal(a, b)


def test_grid_tiles_images():
    images = [Image.new("L", (10, 10), 0) for _ in range(5)]
    grid = rendering.image_grid(images, columns=3, gap=2)
    assert grid.size == (34, 22)
