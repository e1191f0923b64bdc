"""Model cards and Hub releases.

    python -m sketch_diffusion.release --model models/cat --repo-id you/quickdraw-cat-stroke-diffusion          # dry run
    python -m sketch_diffusion.release --model models/cat --repo-id you/quickdraw-cat-stroke-diffusion --push   # upload
    python -m sketch_diffusion.release --model models/cat --refresh-code     # the folder's code = this checkout's

``write_model_card`` builds ``README.md`` (and ``sample.gif``) in a trained model folder from its
``provenance.json``, ``training_config.json`` and ``metrics.json``. ``stage`` copies exactly what the
Hub repository will hold into a folder (weights, code, card, metrics, GIF; no checkpoints or logs)
and lists it; both a dry run and ``--push`` first write the card into the model folder, and ``--push`` then
uploads the staged folder with huggingface_hub. The token comes from the usual
environment or ``hf auth login`` and is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
from pathlib import Path

from .fileio import copy_changed_files, write_bytes_atomic, write_text_atomic
from .provenance import weights_sha256
from .settings import check_pipeline_folder

TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "template.md"
EXCLUDED = {"checkpoints", "logs", "samples"}
LICENSE = "cc-by-4.0"
STAGING_MARKER = ".staged-by-pipeline-release"  # marks a folder that ``stage`` made and may replace
MODEL_COMPONENTS = ("transformer", "distilled_transformer")  # a pipeline folder's StrokeDiffusionModel subfolders


def _load_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` when there is no such file; a ``ValueError`` naming the file when it
    is not a JSON object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, not a {type(data).__name__}")
    return data


def load_metrics(model_dir: str | os.PathLike) -> dict | None:
    """The folder's ``metrics.json``, or ``None`` when there is none; a ``ValueError`` when it was computed for other
    weights than the folder holds now (a retrained model in the same folder), so that stale numbers never ship.

    Metrics record the weights' sha256; metrics without it count as stale when they are older than the export
    recorded in ``provenance.json``."""
    model_dir = Path(model_dir)
    metrics = _load_json(model_dir / "metrics.json")
    if metrics is None:
        return None
    recorded = metrics.get("weights_sha256")
    exported = (_load_json(model_dir / "provenance.json") or {}).get("date", "")
    stale = recorded != weights_sha256(model_dir) if recorded else metrics.get("date", "") < exported
    if stale:
        raise ValueError(f"{model_dir / 'metrics.json'} was computed for other weights than {model_dir} holds now "
                         f"(exported {exported or 'at an unknown date'}): run evaluate.py on it again")
    missing = [key for key in ("fid", "kid_mean", "num_generated", "results", "render", "inception_weights",
                               "data_file", "split") if key not in metrics]
    if missing or "test" not in metrics.get("results", {}):
        lacking = ", ".join(missing) or "results.test"
        raise ValueError(f"{model_dir / 'metrics.json'} is not evaluate.py's output (no {lacking}): run evaluate.py "
                         "on the folder again")
    return metrics


def data_notice(provenance: dict, augment: float = 0.0) -> str | None:
    """The plain warning a card must open with when the model did not see the official data."""
    data = provenance["data_file"]
    used = provenance["drawings"]["used"]
    if data.get("official"):
        return None
    if "sketch-rnn" in Path(data["path"]).name or "sketchrnn" in Path(data["path"]).name:
        return (f"Trained on a SYNTHETIC stand-in corpus: {used:,} drawings sampled from Google's pretrained "
                "Sketch-RNN rabbit model, not on real Quick, Draw! drawings (the full files were not reachable "
                "where it was trained). It shows what the recipe learns at full scale, not a release-quality model.")
    how = " with augmentation" if augment > 0 else ""
    return (f"Trained on only {used} real drawings ({Path(data['path']).name}){how}: a demonstration "
            "of the pipeline, not a model of the category. Retrain on the official data (see the project README).")


def dataset_type(provenance: dict) -> str:
    """``quickdraw`` for the official file, else what the model was really trained on."""
    if provenance["data_file"].get("official"):
        return "quickdraw"
    return "quickdraw-sketchrnn-standin" if "synthetic" in (data_notice(provenance) or "").lower() else "quickdraw-samples"


def _format_metrics(metrics: dict | None) -> str:
    if not metrics:
        return "Not evaluated yet: run `evaluate.py` and rebuild this card."
    lines = [f"Protocol: real test drawings and {metrics['num_generated']:,} generated sketches rendered at "
             f"{metrics['render']['size']} px with line width {metrics['render']['line_width']}, InceptionV3 pool "
             f"features ({metrics['inception_weights']['source']}), FID and KID (subset size "
             f"{metrics['results']['test']['kid_subset_size']}) from torch-fidelity. Data: `{Path(metrics['data_file']['path']).name}`, "
             f"split: {metrics['split']}.", "",
             "| test set | real images | FID ↓ | KID ↓ |", "|---|---|---|---|"]
    names = {"test": "test split as given", "test_leak_free": "de-duplicated, leak-free test subset"}
    for key, result in metrics["results"].items():
        lines.append(f"| {names.get(key, key)} | {result['num_real']:,} | {result['fid']:.2f} | "
                     f"{result['kid_mean']:.4f} ± {result['kid_std']:.4f} |")
    floor = metrics.get("reference_floor")
    if floor:
        lines.append(f"| reference floor (real train vs test) | {floor['num_real']:,} | {floor['fid']:.2f} | "
                     f"{floor['kid_mean']:.4f} ± {floor['kid_std']:.4f} |")
    stats = metrics["results"]["test"].get("stroke_statistics")
    if stats:
        lines += ["", "Stroke statistics, real vs generated (mean; Wasserstein-1 distance):", ""]
        lines += [f"- {name.replace('_', ' ')}: {s['real_mean']:.1f} vs {s['generated_mean']:.1f} "
                  f"(W1 {s['wasserstein']:.2f})" for name, s in stats.items()]
    sampling = metrics.get("sampling") or {}
    lines += ["", f"Sampling: {sampling.get('num_inference_steps')} {sampling.get('scheduler', '')} steps per stroke, "
                  f"guidance scale {sampling.get('guidance_scale', 1.0)}, temperature {sampling.get('temperature')}, "
                  f"seed {sampling.get('seed')}, strokes in the "
                  f"{sampling.get('stroke_format', 'simplified')} format. Full record: `metrics.json`."]
    return "\n".join(lines)


def build_model_card(model_dir: str | os.PathLike, repo_id: str | None = None):
    """A ``huggingface_hub.ModelCard`` for a trained folder (needs ``provenance.json`` and ``training_config.json``)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir = Path(model_dir)
    provenance = _load_json(model_dir / "provenance.json")
    config = _load_json(model_dir / "training_config.json")
    if provenance is None or config is None:
        raise FileNotFoundError(f"{model_dir} lacks provenance.json or training_config.json: is it a train.py output?")
    metrics = load_metrics(model_dir)
    category = provenance["category"]
    notice = data_notice(provenance, config.get("augment", 0.0))
    official = provenance["data_file"].get("official", False)
    eval_results = []
    if metrics:
        dataset_name = f"Quick, Draw! {category} ({metrics['split']})" if official else \
            f"{Path(metrics['data_file']['path']).name} ({metrics['split']})"
        for metric, value in (("fid", metrics["fid"]), ("kid", metrics["kid_mean"])):
            eval_results.append(EvalResult(
                task_type="unconditional-image-generation", task_name="Sketch generation",
                dataset_type=dataset_type(provenance), dataset_name=dataset_name,
                dataset_split="test", metric_type=metric, metric_name=metric.upper(), metric_value=round(value, 4)))
    tags = ["sketch", "quickdraw", "stroke-diffusion", "diffusers", category]
    tags += [] if official else (["synthetic-training-data"] if "synthetic" in (notice or "").lower() else ["demo"])
    card_data = ModelCardData(
        license=LICENSE, library_name="diffusers", pipeline_tag="unconditional-image-generation", tags=tags,
        datasets=["quickdraw"] if official else None, metrics=["fid", "kid"], eval_results=eval_results or None,
        model_name=repo_id or f"quickdraw-{category}-stroke-diffusion",
        training_data="official Quick, Draw! simplified file" if official else (notice or "").split(":")[0])
    drawings = provenance["drawings"]
    training_data = (
        f"`{Path(provenance['data_file']['path']).name}` ({provenance['data_file']['bytes']:,} bytes, git blob sha1 "
        f"`{provenance['data_file']['git_blob_sha1']}`; official file: {'yes' if official else 'no'}), split: "
        f"{provenance['split']['source']}. {drawings['used']:,} of {drawings['train_rows']:,} train drawings used"
        + (f" ({drawings['validation']:,} held out for the validation loss)" if drawings.get("validation") else "")
        + f"; filtered out: {drawings['filtered_out']}.")
    hardware = provenance["hardware"]
    procedure = (
        f"`train.py` with Accelerate: {provenance['steps']:,} steps of batch {config['train_batch_size']} "
        f"({config['noise_draws']} noise draws per stroke), AdamW lr {config['learning_rate']} with {config['lr_scheduler']} "
        f"schedule and {config['lr_warmup_steps']} warm-up steps, EMA {'on' if config['use_ema'] else 'off'}, "
        f"augmentation {config['augment']}, dropout {config.get('dropout', 0.0)}, context dropout (for guidance) "
        f"{config.get('context_dropout', 0.0)}, {config['prediction_type']} prediction, {config['beta_schedule']} DDPM "
        f"schedule ({config['num_train_timesteps']} steps), "
        f"{_precision_words(config.get('mixed_precision'))}; sampling scheduler {config['sampling_scheduler']}. "
        f"Wall time {provenance['wall_time_seconds'] / 60:.1f} min on {hardware['platform']} "
        f"({hardware['cpu_count']} CPU cores{', ' + hardware['gpu'] if hardware.get('gpu') else ''}). "
        f"Full configuration: `training_config.json`; provenance: `provenance.json`.")
    distillation, distilled = _load_json(model_dir / "distillation_config.json"), None
    index = _load_json(model_dir / "model_index.json") or {}
    if distillation:
        adversarial = distillation.get("adversarial_steps", 0)
        procedure += (
            f" Distilled sampler: `distill.py`, {distillation['max_steps']:,} steps of {distillation['batch_size']:,} "
            f"trajectory points ({distillation['trajectory_points']:,} points from the strokes of "
            f"{distillation['teacher_sketches']:,} sketches the model drew and of its training drawings, each drawn "
            f"with {distillation['teacher_steps']} DPM-Solver++ steps), AdamW lr {distillation['learning_rate']}, "
            + (f"then {adversarial:,} adversarial steps against the {distillation['real_strokes']:,} strokes of its "
               "training drawings (a discriminator alone for the first "
               f"{distillation['discriminator_warmup_steps']:,}, then the student with weight "
               f"{distillation['adversarial_weight']}, AdamW lr {distillation['adversarial_learning_rate']}), "
               if adversarial else "")
            + f"{_precision_words(distillation.get('mixed_precision'))}, {distillation['minutes']:.1f} min of "
            "training; settings: `distillation_config.json`.")
        distilled = (
            "By default each stroke is drawn in one step: `distilled_transformer`, a copy of the model whose denoiser "
            "was distilled to jump from noise to the stroke the full model would draw"
            + (" and then trained against a discriminator of real strokes" if adversarial else "")
            + ", sampled with `LCMScheduler` "
            "(1 to 10 steps; 1 is the default)"
            + (", under bfloat16 autocast where the hardware computes bfloat16 natively (a CPU with AVX512-BF16 or AMX, "
               "a GPU with bf16), in float32 elsewhere" if index.get("distilled_mixed_precision") == "bf16" else "")
            + ". The full model, its 10 DPM-Solver++ steps per stroke (float32) and guidance come "
            "back with `pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)`.")
    conv_blocks, attention = config.get("head_conv_blocks", 0), config.get("history_attention_layers", 0)
    denoiser = f"an adaptive-layer-norm MLP over the stroke's {config['points_per_stroke']} points" + (
        f" whose first {attention} blocks attend to the points of the strokes drawn before it" if attention else "") + (
        f", then {conv_blocks} residual convolution blocks along them" if conv_blocks else "")
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), title=f"Stroke-by-stroke sketch diffusion: {category}",
        data_notice=notice, category=category, points_per_stroke=config["points_per_stroke"], denoiser=denoiser,
        max_strokes=config["max_strokes"], parameters_m=f"{provenance['parameters'] / 1e6:.1f}",
        guidance_scale=index.get("default_guidance_scale", 1.0),
        repo_id=repo_id or str(model_dir), training_data=training_data, training_procedure=procedure,
        distilled=distilled, evaluation=_format_metrics(metrics))


def _precision_words(mixed_precision) -> str:
    """How ``training_config.json``'s ``mixed_precision`` reads in a card."""
    if mixed_precision in ("bf16", "fp16"):
        return f"{mixed_precision} autocast with float32 weights"
    return "float32"


def write_sample_gif(model_dir: str | os.PathLike, num: int = 4, seed: int = 0) -> Path:
    """``sample.gif``: ``num`` sketches drawn stroke by stroke side by side (fixed seed)."""
    import torch

    from pipeline.rendering import sketches_gif

    pipe = load_folder_code(model_dir)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(num_sketches=num, generator=torch.Generator().manual_seed(seed), image_size=32)
    return write_bytes_atomic(Path(model_dir) / "sample.gif", sketches_gif(out.strokes, columns=num, size=160))


def write_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write ``README.md`` and ``sample.gif`` (drawn anew, so it shows the folder's current weights) into a trained
    model folder."""
    model_dir = Path(model_dir)
    card = str(build_model_card(model_dir, repo_id))
    write_sample_gif(model_dir)
    return write_text_atomic(model_dir / "README.md", card)


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid Hub repository id (``owner/name``), else a ``ValueError`` saying why."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"--repo-id {repo_id!r} is not a valid Hub repository id: {exc}") from None
    if repo_id.count("/") != 1:
        raise ValueError(f"--repo-id {repo_id!r} must look like owner/name")
    return repo_id


def check_staging_dir(model_dir: Path, staging_dir: Path) -> None:
    """Refuse a staging folder whose replacement would delete anything but an earlier staging: the model folder, a
    folder inside it or holding it, or an existing non-empty folder that ``stage`` did not make."""
    model, staging = model_dir.resolve(), staging_dir.resolve()
    if staging == model or model in staging.parents or staging in model.parents:
        raise ValueError(f"--staging-dir {staging_dir} overlaps the model folder {model_dir}: choose a folder "
                         "outside it (staging replaces the folder's content)")
    if staging_dir.exists():
        if not staging_dir.is_dir():
            raise ValueError(f"--staging-dir {staging_dir} is a file, not a folder")
        if any(staging_dir.iterdir()) and not (staging_dir / STAGING_MARKER).is_file():
            raise ValueError(f"--staging-dir {staging_dir} already holds files that sketch_diffusion.release did not stage; "
                             "choose a new or empty folder (nothing was deleted)")


def stage(model_dir: str | os.PathLike, staging_dir: str | os.PathLike, repo_id: str) -> list[Path]:
    """Copy exactly what the Hub repository will hold into ``staging_dir``; return the files.

    ``staging_dir`` must be new, empty, or an earlier staging (``check_staging_dir``); it is replaced whole.
    """
    model_dir, staging_dir = Path(model_dir), Path(staging_dir)
    check_repo_id(repo_id)
    check_pipeline_folder(model_dir)
    check_staging_dir(model_dir, staging_dir)
    write_model_card(model_dir, repo_id)
    staging_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{staging_dir.name}.", dir=staging_dir.parent))
    try:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True, ignore=lambda folder, names: [n for n in names if (
            Path(folder) == model_dir and n in EXCLUDED) or n == "__pycache__" or n.endswith((".tmp", ".part"))])
        (tmp / STAGING_MARKER).write_text(f"staged from {model_dir} for {repo_id}\n")
        if staging_dir.exists():
            shutil.rmtree(staging_dir)
        os.replace(tmp, staging_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in staging_dir.rglob("*") if p.is_file() and p.name != STAGING_MARKER)


def tidy_model_configs(folder: str | os.PathLike) -> None:
    """Drop from the model configs of a just-saved pipeline folder the path that ``from_pretrained`` recorded
    (``_name_or_path``) and keys ``StrokeDiffusionModel`` no longer takes (options since renamed)."""
    import inspect

    from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel

    accepted = inspect.signature(StrokeDiffusionModel.__init__).parameters
    for name in MODEL_COMPONENTS:
        config_file = Path(folder) / name / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text())
            config = {k: v for k, v in config.items() if (k.startswith("_") and k != "_name_or_path") or k in accepted}
            config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_pretrained_atomic(pipe, folder: str | os.PathLike) -> list[str]:
    """``pipe.save_pretrained`` (a pipeline's, or a model's) into ``folder`` file by file, each write atomic (saved
    into a temporary folder inside it, a pipeline's model configs tidied with ``tidy_model_configs``, then the changed
    files moved in); return the files written. A crash leaves every file whole, old or new."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".", suffix=".tmp") as tmp:  # a crash's leftover: never staged
        pipe.save_pretrained(tmp)
        tidy_model_configs(tmp)
        return copy_changed_files(tmp, folder)


def load_folder_code(model_dir: str | os.PathLike):
    """The folder's pipeline with its own code (``DiffusionPipeline.from_pretrained(..., trust_remote_code=True)``); a
    ``ValueError`` naming the folder when its files do not load (a missing or broken ``pipeline.py``, say)."""
    from diffusers import DiffusionPipeline

    try:
        return DiffusionPipeline.from_pretrained(model_dir, trust_remote_code=True)
    except Exception as exc:
        raise ValueError(f"{model_dir} does not load as a pipeline with its own code ({type(exc).__name__}: {exc}); "
                         "a saved folder holds model_index.json, pipeline.py and its modules, and each component's "
                         "folder") from None


def load_with_this_checkout(model_dir: str | os.PathLike):
    """A pipeline folder loaded with this checkout's classes, not the folder's own code: its models, its scheduler and
    the options of its ``model_index.json`` that this checkout's pipeline takes (keys since removed are dropped)."""
    import inspect

    import diffusers

    from pipeline.modeling_stroke_diffusion import StrokeDiffusionModel
    from pipeline.pipeline_stroke_diffusion import StrokeDiffusionPipeline

    model_dir = check_pipeline_folder(model_dir)
    index = _load_json(model_dir / "model_index.json")
    scheduler_name = (index.get("scheduler") or [None, None])[1]
    scheduler_class = getattr(diffusers, str(scheduler_name), None)
    if scheduler_class is None:
        raise ValueError(f"{model_dir / 'model_index.json'} names scheduler {scheduler_name!r}, which diffusers "
                         f"{diffusers.__version__} does not have")
    options = inspect.signature(StrokeDiffusionPipeline.__init__).parameters
    models = [name for name in MODEL_COMPONENTS if (index.get(name) or [None])[0]]
    return StrokeDiffusionPipeline(scheduler=scheduler_class.from_pretrained(model_dir / "scheduler"),
                                   **{name: StrokeDiffusionModel.from_pretrained(model_dir / name) for name in models},
                                   **{k: v for k, v in index.items() if k in options and not k.startswith("_")
                                      and k not in (*MODEL_COMPONENTS, "scheduler")})


def refresh_code(model_dir: str | os.PathLike, check_seed: int = 0) -> list[str]:
    """Rewrite a pipeline folder's code and config files with this checkout's, keeping its weights; return the
    files that changed.

    The folder is loaded with this checkout's classes and saved with ``save_pretrained`` to a temporary folder.
    Nothing is written unless the weights there are the folder's own, tensor for tensor, and the folder's own
    code and this checkout's draw the same sketches (seed ``check_seed``): options added to the code since the
    release get their defaults, so what the release draws does not change; config keys the model no longer
    takes (options since renamed) are dropped. Use a fresh process per folder (the CLI does): diffusers
    executes a folder's ``pipeline.py`` anew on each load but keeps the modules it imports.
    """
    import tempfile

    import torch
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    fresh = load_with_this_checkout(model_dir)
    models = [name for name in MODEL_COMPONENTS if getattr(fresh, name) is not None]
    shipped = load_folder_code(model_dir)

    def draw(pipe) -> list:
        pipe.set_progress_bar_config(disable=True)
        out = pipe(num_sketches=4, max_strokes=min(8, fresh.transformer.config.max_strokes), image_size=32,
                   generator=torch.Generator().manual_seed(check_seed))
        return [[stroke.tolist() for stroke in sketch] for sketch in out.strokes]

    if draw(shipped) != draw(fresh):
        raise ValueError(f"{model_dir}: this checkout's code draws other sketches than the folder's own; not refreshed")
    weights = [f"{name}/{SAFETENSORS_WEIGHTS_NAME}" for name in models]
    with tempfile.TemporaryDirectory() as tmp:
        fresh.save_pretrained(tmp)
        tidy_model_configs(tmp)
        for name in weights:
            old, new = load_file(model_dir / name), load_file(Path(tmp) / name)
            if old.keys() != new.keys() or not all(torch.equal(old[k], new[k]) for k in old):
                raise ValueError(f"{model_dir}: re-saved weights differ from the folder's ({name}); not refreshed")
        changed = copy_changed_files(tmp, model_dir, skip=weights)
    return changed


def check_hub_reachable(timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when the Hub cannot be reached or offline mode is on."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConnectionError("HF_HUB_OFFLINE is set: unset it to push. The staged folder is ready to upload later.")
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Hub at {constants.ENDPOINT} ({exc}). The staged folder is ready: "
                              "push it later from a machine with a network.") from None


def push(staging_dir: str | os.PathLike, repo_id: str, private: bool = False) -> str:
    """Create the repo if needed and upload the staged folder; returns the commit URL."""
    from huggingface_hub import HfApi, get_token

    check_hub_reachable()
    if get_token() is None:
        raise PermissionError("no Hugging Face token: run `hf auth login` or set HF_TOKEN")
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(staging_dir), commit_message="Release from sketch_diffusion.release",
                             ignore_patterns=[STAGING_MARKER])
    return str(info)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sketch_diffusion.release", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="trained pipeline folder (train.py output)")
    parser.add_argument("--repo-id", help="Hub repository, e.g. you/quickdraw-cat-stroke-diffusion (required unless "
                                          "--refresh-code)")
    parser.add_argument("--staging-dir", help="where to stage the repository (default: outputs/release/<repo name>)")
    parser.add_argument("--push", action="store_true",
                        help="upload (default: a dry run, which writes the model card into --model, stages the "
                             "repository and lists it; nothing leaves the machine)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--refresh-code", action="store_true",
                        help="only rewrite the folder's code and configs with this checkout's, keeping its weights "
                             "(refused unless it draws the same sketches as before)")
    args = parser.parse_args(argv)
    if args.refresh_code:
        try:
            changed = refresh_code(args.model)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.model}: " + (f"refreshed {', '.join(changed)}" if changed else "code already current"))
        return 0
    if not args.repo_id:
        parser.error("--repo-id is required (or --refresh-code)")
    try:
        staging = Path(args.staging_dir or Path("outputs") / "release" / check_repo_id(args.repo_id).split("/")[-1])
        files = stage(args.model, staging, args.repo_id)
        total = sum(f.stat().st_size for f in files)
        print(f"staged {len(files)} files ({total / 1e6:.1f} MB) for {args.repo_id} in {staging}:")
        for f in files:
            print(f"  {f.relative_to(staging)}  ({f.stat().st_size:,} bytes)")
        if not args.push:
            print("dry run: nothing uploaded (add --push to upload)")
            return 0
        print(f"uploaded: {push(staging, args.repo_id, args.private)}")
    except (OSError, ValueError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
