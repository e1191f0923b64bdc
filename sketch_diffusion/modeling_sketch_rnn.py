"""A compact decoder-only Sketch-RNN (Ha & Eck 2017): the baseline our diffusion model is measured against.

An LSTM reads stroke-5 rows ``(dx, dy, p_down, p_lift, p_end)`` (offsets divided by
``scale_factor``, the training set's offset standard deviation in pixels) and predicts the next row:
3 pen logits and a ``num_mixtures``-component bivariate Gaussian mixture over ``(dx, dy)``, laid out
like Google's sketch-rnn-js models so both sample through ``sketch_diffusion.sketch_rnn.sample_sketches``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class SketchRNNDecoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, hidden_size: int = 256, num_mixtures: int = 20, max_seq_len: int = 200,
                 scale_factor: float = 1.0, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(5, hidden_size, batch_first=True)
        self.output_dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, 3 + 6 * num_mixtures)

    def forward(self, inputs: torch.Tensor, state=None):
        """``inputs (B, T, 5)`` -> outputs ``(B, T, 3 + 6M)`` and the LSTM state."""
        hidden, state = self.lstm(inputs, state)
        return self.output(self.output_dropout(hidden)), state

    def step(self, x: torch.Tensor, state):
        """One step for sampling: ``x (N, 5)`` and ``state`` (None, or ``(h, c)`` each ``(N, H)``, batch first like
        ``PretrainedSketchRNN.step``'s, so ``sample_stroke5`` can keep the rows of unfinished sketches) ->
        ``(N, 3 + 6M)`` and the new state."""
        y, (h, c) = self(x[:, None], None if state is None else (state[0][None], state[1][None]))  # nn.LSTM: (1, N, H)
        return y[:, 0], (h[0], c[0])

    def loss(self, stroke5: torch.Tensor, lengths: torch.Tensor):
        """Negative log-likelihood of ``stroke5 (B, T, 5)`` targets with ``lengths (B,)`` real rows.

        Offsets are scored on real rows, pen states on every row (end rows included), as in Sketch-RNN.
        Returns ``(total, offset_nll, pen_nll)``.
        """
        b, t, _ = stroke5.shape
        start = torch.zeros(b, 1, 5, device=stroke5.device)
        start[:, 0, 2] = 1.0
        y, _ = self(torch.cat([start, stroke5[:, :-1]], dim=1))
        logits, mu_x, mu_y, log_sx, log_sy, rho = y[..., 3:].chunk(6, dim=-1)
        rho = torch.tanh(rho).clamp(-0.999, 0.999)
        dx = (stroke5[..., :1] - mu_x) / log_sx.exp()
        dy = (stroke5[..., 1:2] - mu_y) / log_sy.exp()
        one_minus = 1 - rho * rho
        log_normal = (-(dx * dx + dy * dy - 2 * rho * dx * dy) / (2 * one_minus)
                      - log_sx - log_sy - 0.5 * torch.log(one_minus) - math.log(2 * math.pi))
        log_prob = torch.logsumexp(F.log_softmax(logits, dim=-1) + log_normal, dim=-1)  # (B, T)
        valid = torch.arange(t, device=stroke5.device)[None] < lengths[:, None]
        offset_nll = -log_prob[valid].mean()
        pen_nll = F.cross_entropy(y[..., :3].reshape(-1, 3), stroke5[..., 2:].argmax(-1).reshape(-1))
        return offset_nll + pen_nll, offset_nll, pen_nll
