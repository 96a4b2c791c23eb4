"""The flow-matching acoustic head: 36 acoustic values per frame from the backbone's hidden state.

Why flow matching rather than 36 more softmax heads: the acoustic codes are a 36-dimensional FSQ
vector whose dimensions are strongly correlated within a frame; predicting them independently
blurs them, predicting them one after another costs 36 steps per frame. A velocity field over the
whole vector, integrated in a few Euler steps, samples them jointly (DESIGN §6).

The head is a small bidirectional configuration of the backbone (:class:`voxkit.lm.Transformer`)
over three tokens: the projected noisy vector ``x_t``, an embedding of the time ``t`` and the
projected hidden state ``h``. Its output at the first token, projected to 36 dims, is the velocity.

Training (rectified flow): ``x_1`` the frame's FSQ values in [-1, 1], ``x_0 ~ N(0, I)``, ``t ~ U(0, 1)``,
``x_t = (1 - t) x_0 + t x_1``; the target velocity is ``x_1 - x_0``. The condition ``h`` is replaced by
zeros for a fraction of the frames (condition dropout), which teaches the same network the
unconditional field that classifier-free guidance needs.

Sampling: Euler from ``x_0 ~ N(0, I)`` at ``t = 0`` to ``t = 1`` in ``steps`` steps, with guidance
``v = a v(h) + (1 - a) v(0)``; both branches run as one batch of 2N. Only ``x_t`` changes between
steps: the condition's token is projected once per call and the time tokens of the schedule once per
generation (:meth:`FlowHead.step_times`), each with the batch shape :meth:`FlowHead.velocity` would
use, so that the samples are the ones a call of ``velocity`` per step gives, to the bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.norm import delay_embedding

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as the sinusoid of t * 1000 (diffusion models' convention)


class FlowHead(nn.Module):
    """Velocity field v(x_t, t, h) over ``acoustic_dim`` values, conditioned on a hidden state of ``cond_dim``."""

    def __init__(self, args: TransformerArgs, acoustic_dim: int, cond_dim: int) -> None:
        super().__init__()
        d = args.dim
        self.acoustic_dim = acoustic_dim
        self.input_proj = nn.Linear(acoustic_dim, d, bias=False)
        self.cond_proj = nn.Linear(cond_dim, d, bias=False)
        self.time_mlp = nn.Sequential(nn.Linear(d, d, bias=False), nn.SiLU(), nn.Linear(d, d, bias=False))
        self.stack = Transformer(args)
        self.output_proj = nn.Linear(d, acoustic_dim, bias=False)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x_t [N, A], t [N], h [N, C] -> velocity [N, A]."""
        time = self._time_tokens(t, x_t.dtype)  # [N, d]
        tokens = torch.stack([self.input_proj(x_t), time, self.cond_proj(h)], dim=1)  # [N, 3, d]
        out = self.stack.forward_embeddings(tokens)  # [N, 3, d]
        return self.output_proj(out[:, 0])  # [N, A]

    def _time_tokens(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """t [N] -> time tokens [N, d] in ``dtype``: the middle token of :meth:`velocity`."""
        return self.time_mlp(delay_embedding(t * TIME_SCALE, self.stack.args.dim).to(dtype))  # [N, d]

    @torch.no_grad()
    def step_times(self, steps: int, rows: int, time_dtype: torch.dtype, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The time tokens of the Euler schedule ``t_i = i / steps`` for a batch of ``rows``: [steps, rows, d].

        Why apart from :meth:`sample`: they depend on the schedule and the weights, never on the
        frame, so a generation computes them once (:func:`voxkit.tts.generate.generate_frames`) instead
        of ``steps`` MLP calls at every frame. Why ``rows`` rows each, all equal, rather than one:
        :meth:`velocity` embeds a batch of ``rows`` times, and a matmul's rounding can depend on its
        number of rows. ``time_dtype`` is the dtype of t (the condition's), ``dtype`` the one of the
        tokens' input (the noise's).
        """
        schedule = torch.arange(steps, device=device, dtype=time_dtype) * (1.0 / steps)  # [steps]
        return torch.stack([self._time_tokens(schedule[i].expand(rows), dtype) for i in range(steps)])  # [steps, rows, d]

    def loss(self, x1: torch.Tensor, h: torch.Tensor, condition_dropout: float = 0.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss of target values x1 [N, A] under conditions h [N, C] (mean squared error)."""
        n = x1.shape[0]
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)  # [N, A]
        t = torch.rand(n, generator=generator, device=x1.device, dtype=x1.dtype)  # [N]
        if condition_dropout > 0:
            keep = torch.rand(n, generator=generator, device=x1.device) >= condition_dropout  # [N]
            h = h * keep[:, None].to(h.dtype)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * x1  # [N, A]
        return F.mse_loss(self.velocity(x_t, t, h).float(), (x1 - x0).float())

    @torch.no_grad()
    def sample(self, h: torch.Tensor, noise: torch.Tensor, steps: int = 7, cfg: float = 1.2,
               times: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate from ``noise`` [N, A] at t=0 to t=1 under conditions h [N, C]; returns [N, A] (unclamped).

        ``times``: :meth:`step_times` of this call's steps, rows (2N with guidance, else N) and
        dtypes, computed once by a caller that samples many frames; None computes them here.

        cfg is the guidance strength a: 1 is the plain conditional field (the unconditional branch
        is then skipped, which gives the same numbers), above 1 pushes away from the unconditional one.

        Each step computes what :meth:`velocity` would on ``x_t``, the batch of both branches
        ``[h; 0]`` and ``t_i``, with the same shapes, so the result is the same to the bit; why it
        does not call it: the condition and time tokens do not change between steps (see
        :meth:`step_times`), so they are written once into the stack's input buffer, and only the
        ``x_t`` token is rewritten each step.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        n = h.shape[0]
        guided = cfg != 1.0
        rows = 2 * n if guided else n
        cond = torch.cat([h, torch.zeros_like(h)]) if guided else h  # [M, C], M = 2N or N
        cond_token = self.cond_proj(cond)  # [M, d]
        if times is None:
            times = self.step_times(steps, rows, h.dtype, noise.dtype, h.device)  # [steps, M, d]
        tokens = cond_token.new_empty(rows, 3, cond_token.shape[-1])  # [M, 3, d] the stack's input, reused by every step
        tokens[:, 2] = cond_token
        x_in = noise.new_empty(rows, noise.shape[-1])  # [M, A] x_t of both branches
        x = x_in[:n]  # [N, A] the state being integrated: the first half of x_in, updated in place
        x.copy_(noise)
        dt = 1.0 / steps
        for i in range(steps):  # ODE steps, not time steps of the audio
            if guided:
                x_in[n:] = x  # [N, A] the unconditional branch's copy
            tokens[:, 0] = self.input_proj(x_in)  # [M, d]
            tokens[:, 1] = times[i]  # [M, d]
            v = self.output_proj(self.stack.forward_embeddings(tokens)[:, 0])  # [M, A], a fresh tensor: scaled in place
            if guided:
                v = v[:n].mul_(cfg).add_(v[n:].mul_(1.0 - cfg))  # [N, A] a v(h) + (1 - a) v(0)
            x.add_(v.mul_(dt))  # [N, A] x + dt v
        return x


def quantize_acoustic(values: torch.Tensor, levels: int) -> torch.Tensor:
    """FSQ values [..., A] -> level indices [..., A] int64: clamp to [-1, 1], round to ``levels`` steps.

    The codec decodes index k as ``k * 2 / (levels - 1) - 1`` (codec/quantizer.py); this is its inverse.
    Computed in float32 whatever the flow's precision, as the codec's FSQ rounds: in 16 bits the
    shift and scale round first, and a value near a boundary between levels lands one level off.
    """
    half = (levels - 1) / 2
    return torch.round((values.float().clamp(-1.0, 1.0) + 1.0) * half).long()


def acoustic_values(indices: torch.Tensor, levels: int) -> torch.Tensor:
    """Level indices [..., A] -> FSQ values [..., A] in [-1, 1] (float32): the flow's training targets."""
    return indices.float() * (2.0 / (levels - 1)) - 1.0
