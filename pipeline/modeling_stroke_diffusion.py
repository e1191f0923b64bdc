"""The stroke-by-stroke sketch diffusion model: a causal transformer over strokes + a per-stroke denoiser.

Shapes (B sketches, L strokes, P points per stroke, D = ``hidden_size``, H = ``head_hidden_size``):

* A drawn stroke is a ``(P, 2)`` array of points in normalised units [-1, 1].
* ``encode_history(strokes (B, L, P, 2)) -> context (B, L + 1, D)``: ``context[:, k]`` summarises
  strokes ``0..k-1`` (``context[:, 0]`` is the learned start token). Attention is causal, so padding
  after a sketch's last stroke never changes the context of earlier positions.
* ``stop_logits(context) -> (B, L + 1)``: logit that the sketch ends after k strokes.
* ``forward(sample (N, P, 2), timestep (N,), context (N, D) or None, memory) -> (N, P, 2)``: the denoiser. It
  predicts whatever the scheduler's ``prediction_type`` asks for (``train.py``: v-prediction). It is an MLP over
  the flattened points with adaptive layer norm (DiT-style shift/scale/gate) on ``[timestep, context]``; after its
  first ``history_attention_layers`` blocks the stroke cross-attends to point tokens of the strokes drawn before it
  (``HistoryAttention``, reading ``memory``: ``history_memory``, ``row_memory``); then, optionally,
  ``head_conv_blocks`` residual 1-D convolution blocks along the points (``ConvBlock``) see each point's neighbours.
  ``context=None`` means "no history": the learned ``null_context``, which training swaps in for a
  fraction of strokes so that sampling can use classifier-free guidance.

This file needs only torch and diffusers: it is copied into saved pipelines as the component's code.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"hidden_size {width} is not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``x (B, n, width)``. ``cache``: this layer's ``[keys, values]`` of the earlier positions (filled in place),
        ``[]`` on the first call; with earlier positions cached, ``x`` must be the one next position."""
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, w // self.num_heads).permute(2, 0, 3, 1, 4)
        causal = True
        if cache is not None:
            if cache:
                if n != 1:
                    raise ValueError(f"with earlier positions cached, encode one position at a time, not {n}")
                k, v, causal = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2), False
            cache[:] = [k, v]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, n, w))


class TransformerBlock(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class AdaLNBlock(nn.Module):
    """Residual MLP block whose layer norm is shifted, scaled and gated by the conditioning vector."""

    def __init__(self, width: int, mlp_ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class ConvBlock(nn.Module):
    """Residual block of two 1-D convolutions along a stroke's points ``(N, C, P)``, modulated like ``AdaLNBlock``."""

    def __init__(self, channels: int, cond_width: int, kernel_size: int = 5):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, affine=False)  # layer norm over (C, P)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.modulation = nn.Linear(cond_width, 3 * channels)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond)[..., None].chunk(3, dim=1)
        return x + gate * self.conv2(F.gelu(self.conv1(self.norm(x) * (1 + scale) + shift)))


HISTORY_FREQUENCIES = 8  # sines and cosines of each history point's coordinates, at pi * 2**0 .. 2**7


class HistoryMemory(NamedTuple):
    """What the denoiser's history attention reads (``StrokeDiffusionModel.history_memory``): point ``tokens (B, M, W)``
    of B sketches with each token's stroke ``token_stroke (M,)``; denoised row i is query ``slot[i]`` of sketch
    ``sketch[i]`` (both ``(n,)``), and slot r of sketch b sees the tokens of strokes before ``slot_stroke[b, r]``
    (``(B, R)``). ``keys_values``: each layer's projection of ``tokens``, made once by ``with_keys_values`` for a
    denoising loop (``None``: computed at every call)."""

    tokens: torch.Tensor
    token_stroke: torch.Tensor
    sketch: torch.Tensor
    slot: torch.Tensor
    slot_stroke: torch.Tensor
    keys_values: Optional[list] = None


class HistoryAttention(nn.Module):
    """Cross-attention of each stroke's denoiser state ``(N, W)`` to point tokens of the strokes drawn before it.

    Queries are laid out per sketch, ``(B, R, W)`` slots, so that every sketch's keys and values are computed once
    however many of its strokes are denoised; a slot sees the tokens of strokes earlier than its own, plus a learned
    null token (the only one a first stroke, or a stroke trained without history, sees).
    """

    def __init__(self, width: int, memory_width: int, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, memory_width)
        self.kv = nn.Linear(memory_width, 2 * memory_width)
        self.null_kv = nn.Parameter(torch.zeros(2, memory_width))
        self.proj = nn.Linear(memory_width, width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, memory: HistoryMemory,
                keys_values: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``h (N, W)``, of which the first ``len(memory.sketch)`` rows attend; ``keys_values``: ``self.kv`` of
        ``memory.tokens``, if already computed."""
        tokens, token_stroke, sketch, slot, slot_stroke = memory[:5]
        n, w = len(sketch), self.q.out_features
        b, r = slot_stroke.shape
        heads, d = self.num_heads, w // self.num_heads
        queries = h.new_zeros(b, r, h.shape[1])
        queries[sketch, slot] = self.norm(h[:n])
        q = self.q(queries).view(b, r, heads, d).transpose(1, 2)  # (B, heads, R, d)
        k, v = (self.kv(tokens) if keys_values is None else keys_values).chunk(2, dim=-1)  # (B, M, W)
        null_k, null_v = self.null_kv.to(k.dtype)
        k = torch.cat([null_k.expand(b, 1, w), k], dim=1).view(b, -1, heads, d).transpose(1, 2)
        v = torch.cat([null_v.expand(b, 1, w), v], dim=1).view(b, -1, heads, d).transpose(1, 2)
        allowed = token_stroke[None, None, :] < slot_stroke[:, :, None]  # (B, R, M)
        allowed = F.pad(allowed, (1, 0), value=True)[:, None]  # the null token, always
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2).reshape(b, r, w)
        out = self.proj(y[sketch, slot])
        return torch.cat([h[:n] + out, h[n:]])


class StrokeDiffusionModel(ModelMixin, ConfigMixin):
    """History encoder, stop head and per-stroke denoiser of the stroke-by-stroke sketch diffusion model.

    Each stroke is ``points_per_stroke`` points equally spaced by arc length (``representation.resample_stroke``).
    ``context_dropout`` is the fraction of strokes trained with the null context instead of their history
    (the training objective reads it); a model trained with 0 has no use for guidance. ``head_conv_blocks`` > 0
    adds that many ``ConvBlock`` blocks of ``head_conv_channels`` channels after the denoiser MLP; 0 is the plain
    MLP denoiser.
    """

    @register_to_config
    def __init__(
        self,
        points_per_stroke: int = 32,
        max_strokes: int = 32,
        hidden_size: int = 192,
        num_layers: int = 4,
        num_heads: int = 4,
        head_hidden_size: int = 512,
        head_num_blocks: int = 4,
        head_mlp_ratio: int = 2,
        head_conv_blocks: int = 0,
        head_conv_channels: int = 64,
        dropout: float = 0.0,
        context_dropout: float = 0.0,
        history_attention_layers: int = 0,
        history_points: int = 8,
        history_width: int = 128,
    ):
        super().__init__()
        if not 0.0 <= context_dropout < 1.0:
            raise ValueError(f"context_dropout must be in [0, 1), got {context_dropout}")
        if head_conv_blocks < 0 or (head_conv_blocks and head_conv_channels < 1):
            raise ValueError(f"head_conv_blocks must be >= 0 and head_conv_channels >= 1, got {head_conv_blocks} and "
                             f"{head_conv_channels}")
        if not 0 <= history_attention_layers <= head_num_blocks:
            raise ValueError(f"history_attention_layers must be between 0 and head_num_blocks={head_num_blocks}, got "
                             f"{history_attention_layers}")
        flat = 2 * points_per_stroke
        # history encoder
        self.stroke_embed = nn.Sequential(nn.Linear(flat, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
        self.start_token = nn.Parameter(torch.zeros(hidden_size))
        self.position_embed = nn.Embedding(max_strokes + 1, hidden_size)
        self.blocks = nn.ModuleList([TransformerBlock(hidden_size, num_heads, dropout) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(hidden_size)
        self.stop_head = nn.Linear(hidden_size, 1)
        # denoiser
        self.time_embed = nn.Sequential(nn.Linear(256, head_hidden_size), nn.SiLU(),
                                        nn.Linear(head_hidden_size, head_hidden_size))
        self.context_proj = nn.Linear(hidden_size, head_hidden_size)
        self.null_context = nn.Parameter(torch.zeros(hidden_size))
        self.head_in = nn.Linear(flat, head_hidden_size)
        self.head_blocks = nn.ModuleList([AdaLNBlock(head_hidden_size, head_mlp_ratio) for _ in range(head_num_blocks)])
        self.head_norm = nn.LayerNorm(head_hidden_size, elementwise_affine=False)
        out_channels = head_conv_channels if head_conv_blocks else 2  # per point: conv features, or (x, y) itself
        self.head_out = nn.Linear(head_hidden_size, out_channels * points_per_stroke)
        self.conv_in = nn.Conv1d(2, head_conv_channels, 1) if head_conv_blocks else None  # the noisy points too
        self.conv_blocks = nn.ModuleList([ConvBlock(head_conv_channels, head_hidden_size)
                                          for _ in range(head_conv_blocks)])
        self.conv_out = nn.Conv1d(head_conv_channels, 2, 1) if head_conv_blocks else None
        # cross-attention of the denoiser to the earlier strokes' points (after the first adaLN blocks)
        self.memory_embed = nn.Sequential(nn.Linear(2 + 4 * HISTORY_FREQUENCIES, history_width), nn.GELU(),
                                          nn.Linear(history_width, history_width)) if history_attention_layers else None
        self.memory_stroke_embed = nn.Embedding(max_strokes, history_width) if history_attention_layers else None
        self.memory_point_embed = nn.Embedding(history_points, history_width) if history_attention_layers else None
        self.history_attention = nn.ModuleList([HistoryAttention(head_hidden_size, history_width)
                                                for _ in range(history_attention_layers)])
        last = self.conv_out if head_conv_blocks else self.head_out
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def encode_history(self, strokes: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``strokes (B, L, P, 2)`` in [-1, 1], L <= max_strokes -> ``context (B, L + 1, hidden_size)``.

        Incremental use (sampling), with a key/value ``cache``: the first call passes ``cache=[]``, which it fills
        with every layer's keys and values; each later call passes the same list and only the one stroke drawn
        since, ``strokes (B, 1, P, 2)``, and gets that position's ``context (B, 1, hidden_size)``. Select rows of
        the cache with ``select_cache``.
        """
        b, length = strokes.shape[:2]
        start = cache[0][0].shape[2] if cache else 0  # positions already encoded, the start token included
        if max(start - 1, 0) + length > self.config.max_strokes:
            raise ValueError(f"history has {max(start - 1, 0) + length} strokes; this model handles at most "
                             f"{self.config.max_strokes}")
        x = self.stroke_embed(strokes.reshape(b, length, 2 * self.config.points_per_stroke).to(self.start_token.dtype))
        if start == 0:
            x = torch.cat([self.start_token.expand(b, 1, -1), x], dim=1)
        x = x + self.position_embed(torch.arange(start, start + x.shape[1], device=x.device))
        if cache is not None and not cache:
            cache.extend([] for _ in self.blocks)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])
        return self.ln_f(x)

    @staticmethod
    def select_cache(cache: list, rows: torch.Tensor) -> list:
        """The key/value cache of ``encode_history`` for the sketches ``rows`` (indices or a boolean mask) only."""
        return [[keys[rows], values[rows]] for keys, values in cache]

    def history_memory(self, strokes: torch.Tensor, sketch: torch.Tensor, slot: torch.Tensor, sees: torch.Tensor,
                       num_slots: int) -> HistoryMemory:
        """``forward``'s ``memory`` for denoising ``n`` strokes of the sketches ``strokes (B, S, P, 2)``: row i of the
        denoised batch belongs to sketch ``sketch[i]``, takes query slot ``slot[i]`` (< ``num_slots``, unique per
        sketch) and sees that sketch's strokes ``0 .. sees[i] - 1`` (all ``(n,)`` long tensors)."""
        slot_stroke = torch.zeros(len(strokes), num_slots, dtype=torch.long, device=strokes.device)
        slot_stroke[sketch, slot] = sees
        return HistoryMemory(*self.history_tokens(strokes), sketch, slot, slot_stroke)

    def with_keys_values(self, memory: Optional[HistoryMemory]) -> Optional[HistoryMemory]:
        """``memory`` with each attention layer's keys and values computed once, for a loop of denoising steps that
        reads the same history (the same outputs as computing them at every step)."""
        if memory is None:
            return None
        return memory._replace(keys_values=[layer.kv(memory.tokens) for layer in self.history_attention])

    def row_memory(self, history: torch.Tensor, sees: torch.Tensor | None = None) -> Optional[HistoryMemory]:
        """``forward``'s ``memory`` for rows that each denoise one stroke: row i sees the first ``sees[i]`` strokes of
        ``history[i]`` (``history (N, S, P, 2)``, ``sees (N,)`` long; default: all S). ``None`` for a model without
        history attention."""
        if not self.config.history_attention_layers:
            return None
        rows = torch.arange(len(history), device=history.device)
        sees = torch.full_like(rows, history.shape[1]) if sees is None else sees.to(history.device)
        return self.history_memory(history, rows, torch.zeros_like(rows), sees, num_slots=1)

    def history_tokens(self, strokes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``strokes (B, S, P, 2)`` -> point tokens ``(B, S * history_points, history_width)`` and each token's
        stroke index ``(S * history_points,)``."""
        b, s, p = strokes.shape[:3]
        k = self.config.history_points
        pick = torch.linspace(0, p - 1, k, device=strokes.device).round().long()
        xy = strokes[:, :, pick].to(self.null_context.dtype)  # (B, S, K, 2)
        freqs = (2.0 ** torch.arange(HISTORY_FREQUENCIES, device=xy.device, dtype=xy.dtype)) * torch.pi
        angles = (xy[..., None] * freqs).flatten(-2)  # (B, S, K, 2 * HISTORY_FREQUENCIES)
        features = torch.cat([xy, angles.sin(), angles.cos()], dim=-1)
        tokens = self.memory_embed(features) + self.memory_point_embed.weight
        tokens = tokens + self.memory_stroke_embed(torch.arange(s, device=xy.device))[:, None]
        token_stroke = torch.arange(s, device=xy.device).repeat_interleave(k)
        return tokens.reshape(b, s * k, self.config.history_width), token_stroke

    def stop_logits(self, context: torch.Tensor) -> torch.Tensor:
        """``context (..., hidden_size)`` -> logits ``(...)`` that the sketch ends here."""
        return self.stop_head(context).squeeze(-1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor | None = None,
                memory: Optional[HistoryMemory] = None) -> torch.Tensor:
        """Denoise ``sample (N, P, 2)`` at integer ``timestep`` (N,) or scalar, given ``context (N, hidden_size)``
        (``None``: unconditional, the learned null context). ``memory``: what ``history_memory`` built for the
        first rows of ``sample`` (``None``: the history attention layers are skipped)."""
        n = sample.shape[0]
        if context is None:  # one row, broadcast: with a scalar timestep the modulation is computed once
            context = self.null_context[None]
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1)  # (1,) broadcasts over the batch
        if len(timestep) not in (1, n):
            raise ValueError(f"timestep has {len(timestep)} entries for a batch of {n} strokes")
        t_emb = get_timestep_embedding(timestep, 256, flip_sin_to_cos=True, downscale_freq_shift=0)
        cond = F.silu(self.time_embed(t_emb.to(sample.dtype)) + self.context_proj(context.to(sample.dtype)))  # (1 or N, H)
        h = self.head_in(sample.reshape(n, -1))
        for i, block in enumerate(self.head_blocks):
            h = block(h, cond)
            if memory is not None and i < len(self.history_attention):
                h = self.history_attention[i](h, memory, memory.keys_values[i] if memory.keys_values else None)
        h = self.head_out(self.head_norm(h))
        if self.conv_out is None:
            return h.reshape(sample.shape)
        h = h.reshape(n, self.config.points_per_stroke, -1).transpose(1, 2) + self.conv_in(sample.transpose(1, 2))
        for block in self.conv_blocks:
            h = block(h, cond)
        return self.conv_out(h).transpose(1, 2)
