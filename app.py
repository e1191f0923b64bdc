"""Gradio Space: watch the stroke-by-stroke diffusion models draw Quick, Draw! sketches.

    python app.py                         # serves the models in models/<category> on http://127.0.0.1:7860

Models come from ``models/<category>`` by default; ``SKETCH_MODELS="cat=user/repo,bus=path"`` points
categories at Hub repo ids or other folders. Every control has limits, and the queue is on, so one
visitor cannot stall the Space.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from pipeline.rendering import image_grid, render_svg, sketch_gif, sketches_gif
from sketch_diffusion.data import to_ndjson_record
from sketch_diffusion.release import data_notice, load_folder_code

REPO = Path(__file__).resolve().parent
CATEGORIES = ("cat", "bus", "rabbit")
LIMITS = {"num_sketches": (1, 16), "steps": (1, 50), "temperature": (0.2, 1.5), "guidance": (1.0, 5.0),
          "seed": (0, 2**31 - 1)}
CANVAS_PX = 256  # the drawing canvas in the page; strokes are mapped to the 0..255 sketch canvas
MAX_CANVAS_STROKES, MAX_STROKE_POINTS = 64, 5000  # a completion request's bounds
# "default": the sampler the model was saved with; "distilled": its few-step distilled transformer under LCMScheduler
# (the shipped models' default); "full": its transformer under DPM-Solver++, which also takes guidance
SAMPLERS = ("default", "distilled", "full")


def model_sources() -> dict[str, str]:
    """Category -> folder or Hub repo id: ``models/<category>`` unless ``SKETCH_MODELS`` says otherwise."""
    sources = {c: str(REPO / "models" / c) for c in CATEGORIES if (REPO / "models" / c / "model_index.json").is_file()}
    for item in filter(None, os.environ.get("SKETCH_MODELS", "").split(",")):
        category, _, source = item.partition("=")
        if not source:
            raise ValueError(f"SKETCH_MODELS entry {item!r} must look like category=folder_or_repo_id")
        sources[category.strip()] = source.strip()
    return sources


SOURCES = model_sources()
_PIPELINES: dict = {}
_LOCK = threading.Lock()
# Each request writes its GIF and downloads into a folder of its own under OUTPUT_ROOT; Gradio copies them into its
# cache when the request returns. Only the newest KEEP_REQUEST_FOLDERS stay (more than the queue holds), and the root
# goes when the process exits, so files do not pile up.
OUTPUT_ROOT = Path(tempfile.mkdtemp(prefix="sketch_space_"))
KEEP_REQUEST_FOLDERS = 64
atexit.register(shutil.rmtree, OUTPUT_ROOT, ignore_errors=True)


def request_folder() -> Path:
    """A new folder for one request's files; the oldest folders beyond ``KEEP_REQUEST_FOLDERS`` are removed."""
    folder = OUTPUT_ROOT / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    with _LOCK:
        for old in sorted(OUTPUT_ROOT.iterdir())[:-KEEP_REQUEST_FOLDERS]:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def saved_sampler(pipe) -> str:
    """The sampler a loaded pipeline uses as saved: ``"distilled"`` under LCMScheduler, else ``"full"``."""
    return "distilled" if getattr(pipe, "uses_distilled", False) else "full"


def get_pipeline(category: str, sampler: str | None = None):
    """The pipeline of ``category`` (loaded once) with ``sampler`` (``SAMPLERS``; None: "default"); a pipeline per
    sampler, sharing the weights, so that concurrent requests never swap a scheduler under each other."""
    from diffusers import DPMSolverMultistepScheduler

    if category not in SOURCES:
        raise gr.Error(f"Unknown category {category!r}; available: {', '.join(SOURCES) or 'none (train one first)'}")
    if sampler is not None and sampler not in SAMPLERS:
        raise gr.Error(f"Sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    with _LOCK:
        if category not in _PIPELINES:
            try:
                pipe = load_folder_code(SOURCES[category])
            except ValueError as exc:  # a damaged or incomplete folder: the page says so, the Space keeps running
                raise gr.Error(f"The {category} model ({SOURCES[category]}) could not be loaded: {exc}") from None
            pipe.set_progress_bar_config(disable=True)
            _PIPELINES[category] = pipe
        pipe = _PIPELINES[category]
        if sampler in (None, "default", saved_sampler(pipe)):
            return pipe
        if sampler == "distilled":
            raise gr.Error(f"The {category} model has no distilled sampler; choose the full one")
        if (category, sampler) not in _PIPELINES:
            full = pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
            full.set_progress_bar_config(disable=True)
            _PIPELINES[category, sampler] = full
        return _PIPELINES[category, sampler]


def trained_on(category: str) -> str:
    """One line on what data the model behind ``category`` saw."""
    provenance = Path(SOURCES.get(category, "")) / "provenance.json"
    config = Path(SOURCES.get(category, "")) / "training_config.json"
    if not provenance.is_file():
        return f"**{category}**: model from `{SOURCES.get(category)}` (see its model card for its training data)."
    try:
        record = json.loads(provenance.read_text())
        augment = json.loads(config.read_text()).get("augment", 0.0) if config.is_file() else 0.0
        notice = data_notice(record, augment)
        return f"**{category}**: " + (notice or f"trained on the official Quick, Draw! {category} file "
                                      f"({record['drawings']['used']:,} drawings, {record['steps']:,} steps).")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"**{category}**: model from `{SOURCES.get(category)}`; its provenance.json or training_config.json " \
               f"could not be read ({type(exc).__name__}: {exc})."


def check_range(name: str, value, label: str, whole: bool = False) -> float:
    """``value`` as a number within ``LIMITS[name]`` (a whole number with ``whole``), or a page error naming ``label``."""
    low, high = LIMITS[name]
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"{label} must be a number between {low} and {high}, got {value!r}") from None
    if not low <= number <= high:  # NaN fails here too
        raise gr.Error(f"{label} must be between {low} and {high}, got {value}")
    if whole and number != int(number):
        raise gr.Error(f"{label} must be a whole number, got {value}")
    return number


def default_guidance(category: str) -> float:
    """The guidance scale the model behind ``category`` was released with (1.0 when it has none)."""
    return float(get_pipeline(category).config.get("default_guidance_scale", 1.0)) if category in SOURCES else 1.0


def default_steps(category: str, sampler: str | None = None) -> int:
    """Inference steps per stroke that ``sampler`` of ``category`` uses by default."""
    if category not in SOURCES:
        return 10
    return int(getattr(get_pipeline(category, sampler), "default_num_inference_steps", 10))


def run_pipeline(pipe, **kwargs):
    """Call the pipeline; its input errors (e.g. guidance on a model trained without context dropout) go to the page."""
    try:
        return pipe(**kwargs)
    except (ValueError, FloatingPointError) as exc:
        raise gr.Error(str(exc)) from None


def resolve_seed(seed, randomize: bool) -> int:
    if randomize:
        return random.randint(0, LIMITS["seed"][1])
    return int(check_range("seed", seed, "Seed", whole=True))


def write_downloads(category: str, sketches, folder: Path) -> list[str]:
    """One SVG per sketch and one ndjson (official schema) with all of them."""
    files = []
    for i, strokes in enumerate(sketches):
        path = folder / f"{category}_{i}.svg"
        path.write_text(render_svg(strokes))
        files.append(str(path))
    ndjson = folder / f"{category}_sketches.ndjson"
    ndjson.write_text("".join(json.dumps(to_ndjson_record(s, word=category, key_id=f"space-{i}",
                                                           source="stroke-diffusion space")) + "\n"
                              for i, s in enumerate(sketches)))
    return files + [str(ndjson)]


def generate(category, num_sketches, seed, randomize_seed, steps, temperature, guidance, sampler=None):
    """Draw sketches; returns (animated GIF path, grid image, download files, seed used)."""
    num = int(check_range("num_sketches", num_sketches, "Number of sketches", whole=True))
    steps = int(check_range("steps", steps, "Inference steps", whole=True))
    temperature = check_range("temperature", temperature, "Diversity (temperature)")
    guidance = check_range("guidance", guidance, "Guidance")
    seed = resolve_seed(seed, randomize_seed)
    pipe = get_pipeline(category, sampler)
    out = run_pipeline(pipe, num_sketches=num, num_inference_steps=steps, guidance_scale=guidance,
                       temperature=temperature, generator=torch.Generator().manual_seed(seed), image_size=192)
    folder = request_folder()
    gif = folder / f"{category}_{seed}.gif"
    gif.write_bytes(sketches_gif(out.strokes, columns=min(num, 4), size=192))
    return str(gif), image_grid(out.images, columns=min(num, 4)), write_downloads(category, out.strokes, folder), seed


def parse_strokes(strokes_json: str) -> list[np.ndarray]:
    """The canvas's JSON (a list of strokes, each a list of [x, y] in 0..255) -> (n, 2) arrays."""
    try:
        strokes = json.loads(strokes_json or "[]")
    except (json.JSONDecodeError, RecursionError) as exc:
        raise gr.Error(f"The strokes are not valid JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(strokes, list) or not strokes:
        raise gr.Error("Draw at least one stroke on the canvas first.")
    if len(strokes) > MAX_CANVAS_STROKES:
        raise gr.Error(f"The canvas holds {len(strokes)} strokes; at most {MAX_CANVAS_STROKES} can be continued.")
    arrays = []
    for i, stroke in enumerate(strokes):
        try:
            arr = np.asarray(stroke, dtype=np.float32) if isinstance(stroke, list) else np.zeros((0,))
        except (TypeError, ValueError):
            arr = np.zeros((0,))
        if arr.ndim != 2 or arr.shape[1] != 2 or not 0 < len(arr) <= MAX_STROKE_POINTS:
            raise gr.Error(f"Stroke {i + 1} must be a list of 1 to {MAX_STROKE_POINTS:,} [x, y] points.")
        if not np.isfinite(arr).all():
            raise gr.Error(f"Stroke {i + 1} has coordinates that are not finite numbers.")
        arrays.append(np.clip(arr, 0, 255))
    return arrays


def complete(category, strokes_json, seed, randomize_seed, steps, temperature, guidance, sampler=None):
    """Continue the visitor's strokes; returns (GIF path of the drawing as it continues, final image, seed used)."""
    prefix = parse_strokes(strokes_json)
    steps = int(check_range("steps", steps, "Inference steps", whole=True))
    temperature = check_range("temperature", temperature, "Diversity (temperature)")
    guidance = check_range("guidance", guidance, "Guidance")
    seed = resolve_seed(seed, randomize_seed)
    pipe = get_pipeline(category, sampler)
    limit = pipe.transformer.config.max_strokes
    if len(prefix) >= limit:
        raise gr.Error(f"The model draws at most {limit} strokes; you drew {len(prefix)}.")
    out = run_pipeline(pipe, num_sketches=1, num_inference_steps=steps, guidance_scale=guidance,
                       temperature=temperature, prefix_strokes=prefix, generator=torch.Generator().manual_seed(seed),
                       image_size=256)
    gif = request_folder() / f"{category}_{seed}.gif"
    gif.write_bytes(sketch_gif(out.strokes[0], size=256))
    return str(gif), out.images[0], seed


CANVAS_HTML = f"""
<div style="display:flex;flex-direction:column;align-items:center;gap:6px">
  <canvas id="sketch-canvas" width="{CANVAS_PX}" height="{CANVAS_PX}"
          style="border:1px solid #999;background:white;touch-action:none;cursor:crosshair"></canvas>
  <button id="sketch-clear" type="button" style="padding:2px 10px">Clear canvas</button>
</div>
"""

# Captures strokes on the canvas and mirrors them, as JSON in sketch pixels 0..255, into the strokes textbox.
CANVAS_JS = f"""
<script>
(() => {{
  const scale = 255 / {CANVAS_PX};
  let strokes = [], current = null;
  function textbox() {{ return document.querySelector('#strokes-json textarea'); }}
  function publish() {{
    const box = textbox(); if (!box) return;
    box.value = JSON.stringify(strokes);
    box.dispatchEvent(new Event('input', {{bubbles: true}}));
  }}
  function attach(canvas) {{
    if (canvas.dataset.ready) return; canvas.dataset.ready = '1';
    const ctx = canvas.getContext('2d'); ctx.lineWidth = 3; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    const point = e => {{ const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; }};
    canvas.addEventListener('pointerdown', e => {{ canvas.setPointerCapture(e.pointerId); current = [point(e)];
      ctx.beginPath(); ctx.moveTo(...current[0]); }});
    canvas.addEventListener('pointermove', e => {{ if (!current) return; const p = point(e); current.push(p);
      ctx.lineTo(...p); ctx.stroke(); }});
    const finish = () => {{ if (!current) return;
      strokes.push(current.map(([x, y]) => [Math.round(x * scale * 10) / 10, Math.round(y * scale * 10) / 10]));
      current = null; publish(); }};
    canvas.addEventListener('pointerup', finish); canvas.addEventListener('pointerleave', finish);
    document.getElementById('sketch-clear').addEventListener('click', () => {{
      strokes = []; ctx.clearRect(0, 0, canvas.width, canvas.height); publish(); }});
  }}
  setInterval(() => {{ const c = document.getElementById('sketch-canvas'); if (c) attach(c); }}, 300);
}})();
</script>
"""


def startup_value(default, category: str, fallback):
    """``default(category)`` for a control's first value, or ``fallback`` when that model cannot be loaded (the page
    reports it when the category is used), so one damaged model does not keep the Space from starting."""
    try:
        return default(category)
    except gr.Error:
        return fallback


def build_demo() -> gr.Blocks:
    categories = list(SOURCES) or list(CATEGORIES)
    with gr.Blocks(title="Quick, Draw! stroke-by-stroke diffusion", delete_cache=(600, 1800)) as demo:
        gr.Markdown("# Quick, Draw! stroke-by-stroke diffusion\nEach stroke is denoised by a diffusion model "
                    "conditioned on the strokes already drawn; a stop head decides when the sketch is done.")
        gr.Markdown("\n\n".join(trained_on(c) for c in categories))
        with gr.Row():
            category = gr.Dropdown(categories, value=categories[0], label="Category")
            sampler = gr.Radio(list(SAMPLERS), value="default",
                               label="Sampler (default: the model's own; distilled: 1 step per stroke; full: "
                                     "DPM-Solver++, takes guidance)")
            steps = gr.Slider(*LIMITS["steps"], value=startup_value(default_steps, categories[0], 10), step=1,
                              label="Inference steps per stroke")
            temperature = gr.Slider(*LIMITS["temperature"], value=1.0, step=0.05, label="Diversity (temperature)")
            guidance = gr.Slider(*LIMITS["guidance"], value=startup_value(default_guidance, categories[0], 1.0),
                                 step=0.25, label="Guidance (how closely each stroke follows the drawing so far)")
        category.change(default_guidance, category, guidance)  # each model's own released values
        for control in (category, sampler):
            control.change(default_steps, [category, sampler], steps)
        with gr.Row():
            seed = gr.Number(value=0, precision=0, minimum=LIMITS["seed"][0], maximum=LIMITS["seed"][1], label="Seed")
            randomize = gr.Checkbox(value=False, label="Random seed")
        with gr.Tab("Generate"):
            num = gr.Slider(*LIMITS["num_sketches"], value=4, step=1, label="Number of sketches")
            run = gr.Button("Draw", variant="primary", elem_id="generate-button")
            with gr.Row():
                gif = gr.Image(label="Drawing, stroke by stroke", type="filepath", elem_id="generate-gif")
                grid = gr.Image(label="Finished sketches", type="pil", format="png")
            files = gr.File(label="Downloads (SVG per sketch, ndjson in the official schema)", file_count="multiple")
            used_seed = gr.Number(label="Seed used", interactive=False)
            run.click(generate, [category, num, seed, randomize, steps, temperature, guidance, sampler],
                      [gif, grid, files, used_seed],
                      api_name="generate", concurrency_limit=2)
        with gr.Tab("Complete my sketch"):
            gr.Markdown("Draw the first strokes below, then let the model continue.")
            gr.HTML(CANVAS_HTML)
            strokes_json = gr.Textbox(label="Your strokes (JSON, sketch pixels 0..255)", value="[]", lines=2,
                                      elem_id="strokes-json")
            go = gr.Button("Continue my sketch", variant="primary", elem_id="complete-button")
            with gr.Row():
                completion_gif = gr.Image(label="Continuation, stroke by stroke", type="filepath",
                                          elem_id="complete-gif")
                completion = gr.Image(label="Finished sketch", type="pil", format="png")
            completion_seed = gr.Number(label="Seed used", interactive=False)
            go.click(complete, [category, strokes_json, seed, randomize, steps, temperature, guidance, sampler],
                     [completion_gif, completion, completion_seed], api_name="complete", concurrency_limit=2)
    demo.queue(max_size=32, default_concurrency_limit=2)
    return demo


if __name__ == "__main__":
    build_demo().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), head=CANVAS_JS)
