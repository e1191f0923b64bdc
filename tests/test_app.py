"""The Space as a user meets it: through gradio_client, and in a real headless Chromium."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, make_tiny_distilled_pipeline, make_tiny_pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory, request):
    """``python app.py`` on tiny saved pipelines (cat: trained for guidance, bus: not, rabbit: with a distilled
    transformer), on a free loopback port."""
    folder = tmp_path_factory.mktemp("space")
    request.getfixturevalue("tiny_pipeline_module").save_pretrained(folder / "cat")
    make_tiny_pipeline().save_pretrained(folder / "bus")
    make_tiny_distilled_pipeline().save_pretrained(folder / "rabbit")
    port = free_port()
    models = ",".join(f"{c}={folder / c}" for c in ("cat", "bus", "rabbit"))
    env = dict(os.environ, SKETCH_MODELS=models, GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    log = open(folder / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=folder)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the app did not start: {(folder / 'app.log').read_text()[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"the app exited: {(folder / 'app.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tiny_pipeline_module():
    """Guidance on, and the shipped models' DPM-Solver, whose per-call state concurrent visitors must not share."""
    from diffusers import DPMSolverMultistepScheduler

    pipe = make_tiny_pipeline(context_dropout=0.1)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.register_to_config(default_guidance_scale=2.0)
    return pipe


def test_api_generates_gif_grid_and_downloads(space):
    from gradio_client import Client

    client = Client(space, verbose=False)
    gif, grid, files, seed = client.predict("cat", 3, 5, False, 5, 1.0, 2.0, api_name="/generate")
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames >= 2
    assert Image.open(grid).size[0] > 192  # a grid of several sketches
    names = sorted(Path(f).name for f in files)
    assert names == ["cat_0.svg", "cat_1.svg", "cat_2.svg", "cat_sketches.ndjson"]
    ndjson = next(f for f in files if f.endswith(".ndjson"))
    records = [json.loads(line) for line in Path(ndjson).read_text().splitlines()]
    assert len(records) == 3 and all(r["word"] == "cat" and r["drawing"] for r in records)
    assert seed == 5


def test_api_same_seed_same_result(space):
    from gradio_client import Client

    client = Client(space, verbose=False)
    first = client.predict("cat", 2, 11, False, 5, 1.0, 2.0, api_name="/generate")
    second = client.predict("cat", 2, 11, False, 5, 1.0, 2.0, api_name="/generate")
    assert Path(first[0]).read_bytes() == Path(second[0]).read_bytes()
    unguided = client.predict("cat", 2, 11, False, 5, 1.0, 1.0, api_name="/generate")
    assert Path(first[0]).read_bytes() != Path(unguided[0]).read_bytes()  # the guidance slider reaches the model


def test_api_completion_continues_the_strokes(space):
    from gradio_client import Client

    client = Client(space, verbose=False)
    strokes = json.dumps([[[20, 20], [120, 40], [200, 200]], [[50, 200], [60, 100]]])
    gif, image, seed = client.predict("cat", strokes, 1, False, 5, 1.0, 2.0, api_name="/complete")
    with Image.open(gif) as animation:
        assert animation.n_frames >= 3  # blank, the two given strokes, at least ... the final frame
    assert Image.open(image).size == (256, 256)


@pytest.mark.parametrize("args, message", [
    (("cat", 99, 1, False, 5, 1.0, 2.0), "maximum value 16"),
    (("cat", 2, 1, False, 500, 1.0, 2.0), "maximum value 50"),
    (("cat", 2, 1, False, 5, 0.0, 2.0), "minimum value 0.2"),
    (("cat", 2, 1, False, 5, 1.0, 9.0), "maximum value 5"),
    (("bus", 2, 1, False, 5, 1.0, 2.0), "needs a denoiser trained with context dropout"),
    (("cat", 2, 1, False, 5, 1.0, 2.0, "distilled"), "The cat model has no distilled sampler"),
    (("rabbit", 2, 1, False, 20, 1.0, 1.0, "distilled"), "exceeds the 10 steps the distilled transformer"),
    (("rabbit", 2, 1, False, 1, 1.0, 1.0, "fast"), "fast"),
    (("dog", 2, 1, False, 5, 1.0, 2.0), "dog"),
])
def test_api_out_of_range_inputs_give_clear_errors(space, args, message):
    from gradio_client import Client

    with pytest.raises(Exception, match=message):
        Client(space, verbose=False).predict(*args, api_name="/generate")


def test_api_distilled_and_full_samplers_of_one_model(space):
    """A folder with a distilled transformer draws with it by default; "full" draws with its transformer."""
    from gradio_client import Client

    client = Client(space, verbose=False)

    def strokes(*args):
        _, _, files, _ = client.predict("rabbit", 2, 3, False, *args, api_name="/generate")
        lines = Path(next(f for f in files if f.endswith(".ndjson"))).read_text().splitlines()
        return [json.loads(line)["drawing"] for line in lines]

    default, distilled, full = strokes(1, 1.0, 1.0), strokes(1, 1.0, 1.0, "distilled"), strokes(10, 1.0, 1.0, "full")
    assert default == distilled != full
    _, image, _ = client.predict("rabbit", json.dumps([[[20, 20], [120, 40]]]), 1, False, 1, 1.0, 1.0, "distilled",
                                 api_name="/complete")
    assert Image.open(image).size == (256, 256)


def test_api_completion_without_strokes_is_explained(space):
    from gradio_client import Client

    with pytest.raises(Exception, match="Draw at least one stroke"):
        Client(space, verbose=False).predict("cat", "[]", 1, False, 5, 1.0, 2.0, api_name="/complete")


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield instance
        instance.close()


def test_browser_generate_and_complete(space, browser):
    page = browser.new_page()
    page.goto(space, wait_until="domcontentloaded")
    page.click("#generate-button")
    page.wait_for_selector("#generate-gif img[src]", timeout=90_000)
    assert page.locator("#generate-gif img").get_attribute("src")

    page.get_by_role("tab", name="Complete my sketch").click()
    canvas = page.locator("#sketch-canvas")
    canvas.wait_for(state="visible")
    page.wait_for_function("document.getElementById('sketch-canvas').dataset.ready === '1'", timeout=10_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + 40 + 15 * i, box["y"] + 40 + 8 * i)
    page.mouse.up()
    strokes = json.loads(page.locator("#strokes-json textarea").input_value())
    assert len(strokes) == 1 and len(strokes[0]) >= 5
    page.click("#complete-button")
    page.wait_for_selector("#complete-gif img[src]", timeout=90_000)
    assert page.locator("#complete-gif img").get_attribute("src")


def test_twelve_visitors_drawing_the_same_category_at_once_all_get_their_sketches(space):
    """Loopback only, 12 requests, each bounded in time: the queue serves them two at a time from one pipeline."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    def draw(seed):
        return Client(space, verbose=False).predict("cat", 2, seed, False, 5, 1.0, 2.0, api_name="/generate")

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(draw, range(12), timeout=300))
    assert [seed for *_, seed in results] == list(range(12))
    alone = draw(3)
    assert Path(results[3][0]).read_bytes() == Path(alone[0]).read_bytes()  # same seed, same drawing, under load


def test_request_folders_do_not_pile_up(monkeypatch, tmp_path):
    monkeypatch.setenv("SKETCH_MODELS", "")
    sys.path.insert(0, str(REPO))
    import app

    monkeypatch.setattr(app, "OUTPUT_ROOT", tmp_path)
    folders = [app.request_folder() for _ in range(app.KEEP_REQUEST_FOLDERS + 10)]
    assert sorted(tmp_path.iterdir()) == folders[-app.KEEP_REQUEST_FOLDERS:]


@pytest.mark.parametrize("name, value, whole, message", [
    ("temperature", "abc", False, "temperature must be a number between"),
    ("temperature", None, False, "temperature must be a number between"),
    ("temperature", float("nan"), False, "temperature must be between"),
    ("steps", 2.7, True, "steps must be a whole number, got 2.7"),
    ("seed", 10**400, True, "seed must be a number between"),
])
def test_handler_values_that_are_no_numbers_or_not_whole_are_page_errors(monkeypatch, name, value, whole, message):
    monkeypatch.setenv("SKETCH_MODELS", "")
    sys.path.insert(0, str(REPO))
    import gradio as gr

    import app

    with pytest.raises(gr.Error, match=message):
        app.check_range(name, value, name, whole=whole)


def test_a_model_that_does_not_load_is_a_page_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SKETCH_MODELS", "")
    sys.path.insert(0, str(REPO))
    import gradio as gr

    import app

    (tmp_path / "model_index.json").write_text("not json")
    monkeypatch.setitem(app.SOURCES, "broken", str(tmp_path))
    with pytest.raises(gr.Error, match="The broken model .* could not be loaded"):
        app.get_pipeline("broken")


def test_one_damaged_model_does_not_keep_the_space_from_starting(monkeypatch, tmp_path):
    monkeypatch.setenv("SKETCH_MODELS", "")
    sys.path.insert(0, str(REPO))
    import gradio as gr

    import app

    make_tiny_pipeline().save_pretrained(tmp_path / "cat")
    (tmp_path / "cat" / "pipeline.py").unlink()  # the folder's code is gone
    (tmp_path / "cat" / "provenance.json").write_text("[]")
    monkeypatch.setattr(app, "SOURCES", {"cat": str(tmp_path / "cat")})
    monkeypatch.setattr(app, "_PIPELINES", {})
    assert "could not be read" in app.trained_on("cat")
    with pytest.raises(gr.Error, match="The cat model .* could not be loaded"):
        app.get_pipeline("cat")
    assert isinstance(app.build_demo(), gr.Blocks)  # the page starts and reports the model when it is used


def test_canvas_json_nested_too_deep_is_a_page_error(monkeypatch):
    monkeypatch.setenv("SKETCH_MODELS", "")
    sys.path.insert(0, str(REPO))
    import gradio as gr

    import app

    with pytest.raises(gr.Error, match="not valid JSON"):
        app.parse_strokes("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("strokes, message", [
    ('[[["a", "b"], ["c", "d"]]]', "Stroke 1 must be a list of 1 to 5,000"),
    ("[[[1, 2], [3]]]", "Stroke 1 must be a list of 1 to 5,000"),
    (json.dumps([[[1, 2]] * 6000]), "Stroke 1 must be a list of 1 to 5,000"),
    (json.dumps([[[1, 2], [3, 4]]] * 65), "at most 64"),
    ("[[[1e999, 2], [3, 4]]]", "not finite"),
])
def test_api_completion_names_the_bad_stroke(space, strokes, message):
    from gradio_client import Client

    with pytest.raises(Exception, match=message):
        Client(space, verbose=False).predict("cat", strokes, 1, False, 5, 1.0, 2.0, api_name="/complete")
