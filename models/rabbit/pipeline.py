"""``StrokeDiffusionPipeline``: draws Quick, Draw! sketches one stroke at a time.

For each new stroke the transformer summarises the strokes already drawn, a stop head decides
whether the sketch is finished, and a diffusers scheduler runs the reverse diffusion of the new
stroke's ``(P, 2)`` points conditioned on that summary.

Saved pipelines carry this file as ``pipeline.py`` (with ``representation.py`` and
``rendering.py`` beside it) and load with
``DiffusionPipeline.from_pretrained(folder_or_repo, trust_remote_code=True)``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.dynamic_modules_utils import get_relative_import_files
from diffusers.utils.torch_utils import randn_tensor

from .rendering import DEFAULT_LINE_WIDTH, DEFAULT_PADDING, DEFAULT_SIZE, render_image, render_progress
from .representation import (CANVAS_SIZE, as_stroke_list, canvas_fit, raw_to_simplified_batch, simplify_normalized,
                             strokes_to_normalized, unit_to_pixels)


DEFAULT_NUM_INFERENCE_STEPS = 10  # DPM-Solver++ steps per stroke of the transformer
DISTILLED_NUM_INFERENCE_STEPS = 1  # LCMScheduler steps per stroke of the distilled transformer
DISTILLED_SCHEDULER = "LCMScheduler"  # the scheduler that samples the distilled transformer (and only it)
CORRUPTED = "the model produced NaN or infinite {what}: its weights are likely corrupted (re-download the folder)"
MAX_SKETCHES_PER_CALL = 10_000  # one batch's canvas state; draw more in several calls
MAX_TEMPERATURE = 10.0  # the initial noise's scale; far above it the denoiser's arithmetic overflows
# Under autocast the encoder's and the denoiser's rows are padded to a multiple of this: the batch shrinks as sketches
# finish, and the CPU backend (oneDNN) builds its bfloat16 kernels per shape; with a few shapes it reuses them. Rows
# never mix, so the padding changes no sketch.
ROW_BUCKET = 64
# Schedulers that sample the discrete-time DDPM process the model was trained on and, tried on the rabbit, draw
# sketches like the saved DPM-Solver++; Heun, KDPM2-ancestral, IPNDM, the EDM and flow-matching ones do not.
SUPPORTED_SCHEDULERS = frozenset({
    "DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler", "PNDMScheduler", "KDPM2DiscreteScheduler"})


@dataclass
class StrokeDiffusionOutput(BaseOutput):
    """Result of ``StrokeDiffusionPipeline.__call__``.

    Args:
        strokes: one list per sketch, each a list of ``(n_i, 2)`` float32 arrays in canvas pixels 0..255,
            prefix strokes first (see ``stroke_format``).
        images: the finished sketches as PIL images (``output_type="pil"``), a ``(num_sketches, size, size)`` uint8
            array (``"np"``), or ``None`` (``"strokes"``: nothing rendered).
        progress: with ``return_progress=True``, per sketch the canvas (PIL) after every stroke.
        trajectories: with ``return_trajectories=True``, per sketch and generated stroke a
            ``(num_inference_steps + 1, P, 2)`` array in the same canvas pixels as ``strokes``: the
            denoising path from noise.
    """

    strokes: list
    images: Union[list, np.ndarray]
    progress: Optional[list] = None
    trajectories: Optional[list] = None


def computes_bf16_natively(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX tiles.
    Elsewhere bfloat16 is emulated, and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and probe() for probe in probes)


def pad_rows(index: torch.Tensor, bucket: int) -> torch.Tensor:
    """``index (n,)`` followed by copies of its first entry, up to a multiple of ``bucket`` entries."""
    return torch.cat([index, index[:1].expand(-len(index) % bucket)]) if len(index) else index


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number_at_least(value, low: float, name: str, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


class StrokeDiffusionPipeline(DiffusionPipeline):
    """Pipeline for stroke-by-stroke sketch generation.

    Args:
        transformer: a ``StrokeDiffusionModel`` (history encoder, stop head and stroke denoiser).
        scheduler: the scheduler run once per stroke: one of the DDPM family (``SUPPORTED_SCHEDULERS``), which samples
            ``transformer``, or ``LCMScheduler``, which samples ``distilled_transformer``.
        distilled_transformer: optional; a copy of ``transformer`` whose denoiser was consistency-distilled
            (``sketch_diffusion.distillation``) to draw a stroke in ``DISTILLED_NUM_INFERENCE_STEPS`` LCMScheduler
            steps instead of ``DEFAULT_NUM_INFERENCE_STEPS`` DPM-Solver++ steps.
        default_guidance_scale: the ``guidance_scale`` used when a call gives none (saved in ``model_index.json``).
        simplify_epsilon: RDP tolerance in canvas pixels (the official files use 2) of each drawn stroke before it
            becomes history, and of the ``"simplified"`` output (saved in ``model_index.json``).
        distilled_mixed_precision: ``"bf16"``: ``distilled_transformer`` samples under bfloat16 autocast on devices
            that compute bfloat16 natively (``computes_bf16_natively``), in float32 elsewhere; ``"no"``: always in
            float32. ``distill.py`` saves the precision it trained in. ``transformer`` always samples in float32.
    """

    model_cpu_offload_seq = "transformer->distilled_transformer"
    _optional_components = ["distilled_transformer"]

    def __init__(self, transformer, scheduler, distilled_transformer=None, default_guidance_scale: float = 1.0,
                 simplify_epsilon: float = 2.0, distilled_mixed_precision: str = "no"):
        super().__init__()
        _number_at_least(simplify_epsilon, 0, "simplify_epsilon (canvas pixels)")
        if distilled_mixed_precision not in ("no", "bf16"):
            raise ValueError(f"distilled_mixed_precision must be 'no' or 'bf16', got {distilled_mixed_precision!r}")
        self.register_modules(transformer=transformer, scheduler=scheduler, distilled_transformer=distilled_transformer)
        self.register_to_config(default_guidance_scale=default_guidance_scale, simplify_epsilon=simplify_epsilon,
                                distilled_mixed_precision=distilled_mixed_precision)

    @property
    def uses_distilled(self) -> bool:
        """Whether calls sample ``distilled_transformer`` (the scheduler is ``LCMScheduler``) or ``transformer``."""
        return type(self.scheduler).__name__ == DISTILLED_SCHEDULER

    @property
    def sampled_model(self):
        """The ``StrokeDiffusionModel`` that calls sample with this scheduler: ``distilled_transformer`` under
        ``LCMScheduler``, else ``transformer``."""
        return self.distilled_transformer if self.uses_distilled else self.transformer

    @property
    def default_num_inference_steps(self) -> int:
        """The ``num_inference_steps`` of a call that gives none: it depends on the model the scheduler samples."""
        return DISTILLED_NUM_INFERENCE_STEPS if self.uses_distilled else DEFAULT_NUM_INFERENCE_STEPS

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        """``torch.bfloat16`` where calls sample under bfloat16 autocast (see ``distilled_mixed_precision``), else
        ``None``: float32."""
        bf16 = self.uses_distilled and self.config.distilled_mixed_precision == "bf16"
        return torch.bfloat16 if bf16 and computes_bf16_natively(self._execution_device) else None

    def with_scheduler(self, scheduler) -> "StrokeDiffusionPipeline":
        """A pipeline that shares this one's models and settings and samples with ``scheduler``. The full sampler of a
        distilled pipeline: ``pipe.with_scheduler(DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))``."""
        other = type(self)(self.transformer, scheduler, self.distilled_transformer,
                           default_guidance_scale=self.config.default_guidance_scale,
                           simplify_epsilon=self.config.simplify_epsilon,
                           distilled_mixed_precision=self.config.distilled_mixed_precision)
        other.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return other

    # ------------------------------------------------------------------ inputs

    def check_inputs(self, num_sketches, num_inference_steps, guidance_scale, temperature, max_strokes,
                     prefix_strokes, generator, output_type, stroke_format, image_size, line_width=DEFAULT_LINE_WIDTH) -> list:
        """Validate a call's arguments (a ``ValueError`` names the argument); return the prefix as ``(n, 2)`` arrays."""
        scheduler_name = type(self.scheduler).__name__
        if self.uses_distilled and self.distilled_transformer is None:
            raise ValueError(f"{DISTILLED_SCHEDULER} samples a distilled transformer and this pipeline has none "
                             f"(distilled_transformer is None): use one of {', '.join(sorted(SUPPORTED_SCHEDULERS))}")
        if not self.uses_distilled and scheduler_name not in SUPPORTED_SCHEDULERS:
            raise ValueError(f"scheduler {scheduler_name} is not supported: the model was trained with DDPM noise, "
                             f"which these schedulers sample: {', '.join(sorted(SUPPORTED_SCHEDULERS))}; "
                             f"a distilled transformer is sampled with {DISTILLED_SCHEDULER}")
        if _positive_int(num_sketches, "num_sketches") > MAX_SKETCHES_PER_CALL:
            raise ValueError(f"num_sketches={num_sketches} is more than {MAX_SKETCHES_PER_CALL} in one call; "
                             "draw them in several calls")
        if _positive_int(num_inference_steps, "num_inference_steps") > self.scheduler.config.num_train_timesteps:
            raise ValueError(f"num_inference_steps={num_inference_steps} exceeds the scheduler's "
                             f"{self.scheduler.config.num_train_timesteps} training timesteps")
        distilled_steps = self.scheduler.config.get("original_inference_steps") if self.uses_distilled else None
        if distilled_steps and num_inference_steps > distilled_steps:
            raise ValueError(f"num_inference_steps={num_inference_steps} exceeds the {distilled_steps} steps the "
                             f"distilled transformer was distilled from; use 1 to {distilled_steps}")
        _number_at_least(guidance_scale, 0, "guidance_scale")
        if guidance_scale != 1.0 and not self.sampled_model.config.context_dropout:
            raise ValueError(f"guidance_scale={guidance_scale} needs a denoiser trained with context dropout; this one "
                             "was not (its null context is untrained; a distilled one never is), so use "
                             "guidance_scale=1.0")
        if _number_at_least(temperature, 0, "temperature", strict=True) > MAX_TEMPERATURE:
            raise ValueError(f"temperature={temperature} is more than {MAX_TEMPERATURE:g}; 1.0 samples the learned "
                             "distribution")
        limit = self.transformer.config.max_strokes
        if _positive_int(max_strokes, "max_strokes") > limit:
            raise ValueError(f"max_strokes={max_strokes} exceeds the model's limit of {limit} strokes")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if output_type not in ("pil", "np", "strokes"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'strokes', got {output_type!r}")
        if stroke_format not in ("simplified", "raw"):
            raise ValueError(f"stroke_format must be 'simplified' or 'raw', got {stroke_format!r}")
        if not 32 <= _positive_int(image_size, "image_size") <= 4096:
            raise ValueError(f"image_size must be between 32 and 4096 pixels (each side has a margin of "
                             f"{DEFAULT_PADDING:g} pixels), got {image_size}")
        if _number_at_least(line_width, 0, "line_width", strict=True) > image_size / 4:
            raise ValueError(f"line_width={line_width} is more than a quarter of image_size={image_size}")
        if prefix_strokes is None:
            return []
        prefix = as_stroke_list(prefix_strokes, "prefix_strokes")
        for i, stroke in enumerate(prefix):
            if stroke.min() < 0 or stroke.max() > CANVAS_SIZE:
                raise ValueError(f"prefix_strokes[{i}] has coordinates outside the canvas 0..{CANVAS_SIZE:g} pixels")
        if len(prefix) >= max_strokes:
            raise ValueError(f"prefix_strokes has {len(prefix)} strokes; max_strokes={max_strokes} leaves none to draw")
        return prefix

    @staticmethod
    def _uniform(n: int, generator, device) -> torch.Tensor:
        """``(n,)`` uniform draws in [0, 1) from ``generator`` (on its own device), moved to ``device``."""
        return torch.rand(n, generator=generator, device=generator.device if generator is not None else "cpu").to(device)

    # ------------------------------------------------------------------ sampling

    def denoise_stroke(self, scheduler, context: torch.Tensor, num_inference_steps: int, guidance_scale: float,
                       generator, temperature: float, return_trajectory: bool = False, row_bucket: int = 1,
                       memory=None):
        """Run ``scheduler`` (this call's own copy of ``self.scheduler``) from noise to one stroke per row of
        ``context (N, D)``; the model sees its rows zero-padded to a multiple of ``row_bucket``, and ``memory``, the
        strokes drawn before each row's (``StrokeDiffusionModel.row_memory``; ``None``: not read).

        With ``guidance_scale`` w != 1 the model output is classifier-free guided:
        ``uncond + w * (cond - uncond)``, the unconditional branch seeing the null context.
        Returns ``(N, P, 2)`` points in [-1, 1] and, if asked, the ``(steps + 1, N, P, 2)`` trajectory.
        """
        model = self.sampled_model
        sample = randn_tensor((context.shape[0], model.config.points_per_stroke, 2), generator=generator,
                              device=context.device, dtype=context.dtype)
        sample = sample * scheduler.init_noise_sigma * temperature
        scheduler.set_timesteps(num_inference_steps, device=context.device)
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        trajectory = [sample] if return_trajectory else None
        n, pad = len(sample), -len(sample) % row_bucket
        context = torch.nn.functional.pad(context, (0, 0, 0, pad))
        memory = model.with_keys_values(memory)  # the history is the same at every step
        for t in scheduler.timesteps:
            model_input = torch.nn.functional.pad(scheduler.scale_model_input(sample, t), (0, 0, 0, 0, 0, pad))
            model_output = model(model_input, t, context, memory)[:n]
            if guidance_scale != 1.0:  # the unconditional pass shares one conditioning row, so it costs less
                uncond = model(model_input, t, None)[:n]
                model_output = uncond + guidance_scale * (model_output - uncond)
            sample = scheduler.step(model_output, t, sample, **step_kwargs).prev_sample
            if return_trajectory:
                trajectory.append(sample)
        if not torch.isfinite(sample).all():
            raise FloatingPointError(CORRUPTED.format(what="denoised points"))
        sample = sample.clamp(-1.0, 1.0)
        return sample, (torch.stack(trajectory) if return_trajectory else None)

    @torch.no_grad()
    def __call__(
        self,
        num_sketches: int = 1,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        generator: Optional[torch.Generator] = None,
        temperature: float = 1.0,
        max_strokes: Optional[int] = None,
        prefix_strokes: Optional[Sequence] = None,
        output_type: str = "pil",
        stroke_format: str = "simplified",
        image_size: int = DEFAULT_SIZE,
        line_width: float = DEFAULT_LINE_WIDTH,
        return_progress: bool = False,
        return_trajectories: bool = False,
        return_dict: bool = True,
    ) -> Union[StrokeDiffusionOutput, tuple]:
        """Generate ``num_sketches`` sketches.

        Args:
            num_sketches: how many sketches to draw in one batch (at most ``MAX_SKETCHES_PER_CALL``).
            num_inference_steps: scheduler steps per stroke; default ``default_num_inference_steps`` (1 with the
                distilled transformer under ``LCMScheduler``, else 10).
            guidance_scale: classifier-free guidance on the strokes already drawn (1.0 = none; larger values
                keep each new stroke closer to what the history calls for). Default: the pipeline's
                ``default_guidance_scale``. Needs a model trained with ``context_dropout`` > 0.
            generator: a ``torch.Generator``; the same seed gives the same sketches.
            temperature: diversity knob (> 0). Scales the initial noise of every stroke and divides the
                stop logit; 1.0 samples the learned distribution, lower values give tidier, more typical sketches.
            max_strokes: stop every sketch after this many strokes (default: the model's limit).
            prefix_strokes: completion mode: strokes already drawn, in canvas pixels 0..255, shared by all sketches;
                the model continues them. Each stroke is an ``(n, 2)`` array of points, or nested lists in the
                official layout ``[xs, ys]`` (raw files: ``[xs, ys, ts]``); see ``representation.as_stroke_list``.
            output_type: ``"pil"`` or ``"np"`` for ``images``; ``"strokes"`` renders no images (for callers that
                use ``strokes`` alone, such as evaluation, which renders them its own way).
            stroke_format: ``"simplified"`` gives strokes the way the Quick, Draw! simplified files store
                drawings, which is what the model was trained on: the sketch scaled so its longer side spans
                0..255 and moved to the top-left corner (skipped when ``prefix_strokes`` are given, so they
                stay where they were drawn), then each stroke RDP-simplified (``simplify_epsilon``) to integer
                pixels. ``"raw"`` gives the strokes as the history encoder read them: each drawn stroke
                RDP-simplified and resampled to the model's ``points_per_stroke`` points.
            image_size, line_width: rendering of ``images`` and ``progress``, in output pixels.
            return_progress: also return each sketch's canvas after every stroke (for animations).
            return_trajectories: also return each generated stroke's denoising trajectory.
        """
        num_inference_steps = self.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        max_strokes = self.transformer.config.max_strokes if max_strokes is None else max_strokes
        guidance_scale = self.config.default_guidance_scale if guidance_scale is None else guidance_scale
        prefix = self.check_inputs(num_sketches, num_inference_steps, guidance_scale, temperature, max_strokes,
                                   prefix_strokes, generator, output_type, stroke_format, image_size, line_width)
        model = self.sampled_model  # the transformer, or its distilled copy under LCMScheduler
        config = model.config
        device, dtype = self._execution_device, model.dtype
        epsilon = self.config.simplify_epsilon
        scheduler = copy.deepcopy(self.scheduler)  # schedulers keep per-call state: concurrent calls each get one

        # 1. canvas state: (B, max_strokes, P, 2) in [-1, 1], the prefix first
        strokes = torch.zeros(num_sketches, max_strokes, config.points_per_stroke, 2, device=device, dtype=dtype)
        if prefix:
            packed = strokes_to_normalized(prefix, config.points_per_stroke)
            strokes[:, : len(prefix)] = torch.from_numpy(packed).to(device=device, dtype=dtype)
        lengths = torch.full((num_sketches,), len(prefix), dtype=torch.long, device=device)
        trajectories = [[] for _ in range(num_sketches)] if return_trajectories else None

        # 2. one stroke at a time: decide whether to stop, then denoise the next stroke. The history encoder keeps
        # its keys and values (cache), so each step encodes only the stroke just drawn; finished sketches leave the
        # batch (active) and cost nothing from then on. The canvas state stays float32 under autocast, where the
        # encoder's rows are the active sketches' padded with copies of the first (ROW_BUCKET).
        autocast = self.autocast_dtype
        bucket = ROW_BUCKET if autocast else 1
        active, cache = torch.arange(num_sketches, device=device), []
        unread = strokes[pad_rows(active, bucket), : len(prefix)]
        with torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext():
            for k in self.progress_bar(range(len(prefix), max_strokes)):
                context = model.encode_history(unread, cache)[: len(active), -1]
                stop_prob = torch.sigmoid(model.stop_logits(context).float() / temperature)
                if not torch.isfinite(stop_prob).all():
                    raise FloatingPointError(CORRUPTED.format(what="stop probabilities"))
                uniform = self._uniform(num_sketches, generator, device)[active]
                go_on = uniform >= stop_prob
                if k > 0 and not go_on.all():  # the cache keeps its rows while every sketch goes on
                    active, context = active[go_on], context[go_on]
                    cache = model.select_cache(cache, pad_rows(go_on.nonzero().squeeze(1), bucket))
                if len(active) == 0:
                    break
                new, trajectory = self.denoise_stroke(scheduler, context, num_inference_steps, guidance_scale,
                                                      generator, temperature, return_trajectories, bucket,
                                                      model.row_memory(strokes[active, :k]))
                # the history encoder reads strokes in the piecewise-linear form of its training data
                new = simplify_normalized(new.float().cpu().numpy(), epsilon)
                strokes[active, k] = torch.from_numpy(new).to(device=device, dtype=dtype)
                lengths[active] += 1
                unread = strokes[pad_rows(active, bucket), k : k + 1]
                if return_trajectories:
                    for j, i in enumerate(active.tolist()):
                        trajectories[i].append(unit_to_pixels(trajectory[:, j].float().cpu().numpy()))

        # 3. back to canvas pixels, render
        pixels = unit_to_pixels(strokes.float().cpu().numpy())
        sketches = [list(pixels[i, : lengths[i]]) for i in range(num_sketches)]
        if stroke_format == "simplified":
            fit = not prefix
            if return_trajectories and fit:
                trajectories = [[(path - origin) * scale for path in paths]
                                for paths, (origin, scale) in zip(trajectories, map(canvas_fit, sketches))]
            sketches = raw_to_simplified_batch(sketches, fit=fit, epsilon=epsilon)
        style = {"size": image_size, "line_width": line_width}
        images = None if output_type == "strokes" else [render_image(s, **style) for s in sketches]
        if output_type == "np":
            images = np.stack([np.asarray(im) for im in images])
        progress = [render_progress(s, **style) for s in sketches] if return_progress else None

        self.maybe_free_model_hooks()
        if not return_dict:
            return sketches, images, progress, trajectories
        return StrokeDiffusionOutput(strokes=sketches, images=images, progress=progress, trajectories=trajectories)

    # ------------------------------------------------------------------ saving

    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs):
        """Save a Hub-ready folder that loads with ``DiffusionPipeline.from_pretrained(..., trust_remote_code=True)``.

        On top of diffusers' layout this writes ``pipeline.py`` (this file) and the modules it imports at
        the folder's root, each custom component's code file in its subfolder, and a
        ``model_index.json`` whose ``_class_name`` is ``["pipeline", "<class>"]``.
        """
        push_to_hub = kwargs.pop("push_to_hub", False)
        repo_id = kwargs.pop("repo_id", None)
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        index = json.loads((folder / "model_index.json").read_text())

        pipeline_file = Path(inspect.getfile(type(self)))
        index["_class_name"] = ["pipeline", type(self).__name__]
        shutil.copyfile(pipeline_file, folder / "pipeline.py")
        for dependency in get_relative_import_files(str(pipeline_file)):
            shutil.copyfile(dependency, folder / Path(dependency).name)

        for name, component in self.components.items():
            library = type(component).__module__.split(".")[0]
            if component is None or library in ("diffusers", "transformers"):
                continue
            module_file = Path(inspect.getfile(type(component)))
            shutil.copyfile(module_file, folder / name / module_file.name)
            index[name] = [module_file.stem, type(component).__name__]

        tmp = folder / "model_index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, folder / "model_index.json")

        if push_to_hub:
            from huggingface_hub import create_repo, upload_folder

            repo_id = create_repo(repo_id or folder.name, exist_ok=True, private=kwargs.get("private")).repo_id
            upload_folder(repo_id=repo_id, folder_path=folder, commit_message=kwargs.get("commit_message"))
