"""Next-token sampling: greedy, temperature, top-k and nucleus (top-p), batched and on-device.

Everything here is a handful of tensor ops over the whole batch ``[B, V]``: no Python loop over
streams or the vocabulary and no host synchronisation, so the decode loop in
:mod:`voxkit.lm.generate` can run many steps without waiting for the device.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from voxkit.checks import is_number, is_whole
from voxkit.errors import OptionError


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token.

    temperature 0 means greedy (argmax), whatever top_k / top_p say. top_k keeps the k most likely
    tokens; top_p keeps the smallest set of most likely tokens whose probability reaches p (the
    most likely token is always kept). Both filters may be combined: top-k applies first.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        # "not x >= 0" also catches NaN, which would otherwise reach the softmax as a NaN distribution
        if not is_number(self.temperature) or not 0.0 <= self.temperature < math.inf:
            raise OptionError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.top_k is not None and (not is_whole(self.top_k) or self.top_k < 1):
            raise OptionError(f"top_k must be a whole number >= 1, got {self.top_k!r}")
        if self.top_p is not None and (not is_number(self.top_p) or not 0.0 < self.top_p <= 1.0):
            raise OptionError(f"top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


SEED_LIMIT = 2**64
"""torch.Generator.manual_seed takes a 64-bit seed; a larger one overflows inside torch."""


def check_seed(seed: object) -> int:
    """A seed for :class:`torch.Generator`: a whole number in [0, 2^64)."""
    if not is_whole(seed) or not 0 <= seed < SEED_LIMIT:  # type: ignore[operator]
        raise OptionError(f"seed must be a whole number from 0 to 2^64 - 1, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


NUCLEUS_PROBES: tuple[int, ...] = (256, 4096)
"""How many of the most likely tokens a CPU top-p draw looks at, in turn, before it sorts them all."""


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of non-negative weights [B, K], with probability weight / row sum -> [B].

    Why not torch.multinomial: without replacement it draws one exponential variate per column
    (131k of them per token for a Mistral vocabulary), which costs more on a CPU than a small
    model's whole decode step. Inverting the cumulative sum needs one uniform number per row.
    ``u`` lies in (0, total], and the search takes the first column whose cumulative sum reaches
    it, so a column of weight zero (a masked token) is never chosen, even at the ends.
    """
    cdf = weights.cumsum(dim=-1)  # [B, K] non-decreasing: the weights are >= 0
    u = torch.rand(weights.shape[0], 1, generator=generator, device=weights.device, dtype=weights.dtype)  # [B, 1] in [0, 1)
    u = (1.0 - u).mul_(cdf[:, -1:])  # [B, 1] in (0, total]
    return torch.searchsorted(cdf, u)[:, 0]  # [B]


def _keep_nucleus(weights: torch.Tensor, total: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the weights [B, K] (descending) of tokens beyond probability mass top_p of ``total`` [B, 1]."""
    probs = weights / total  # [B, K]
    mass_before = probs.cumsum(dim=-1) - probs  # [B, K] mass of the strictly more likely tokens
    return weights.masked_fill(mass_before >= top_p, 0.0)  # first column always kept


def _nucleus_candidates(logits: torch.Tensor, total: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely tokens of logits [B, V], descending, enough to hold mass top_p of ``total``
    (the rows' sums of exp(logits), [B, 1]): ([B, K], ids [B, K]).

    Why: sorting the whole vocabulary is the slow part of a top-p draw on a CPU. Most of the time
    the nucleus lies within the first few hundred tokens, so the top NUCLEUS_PROBES are taken first,
    and the full sort runs only when they hold less than top_p. On a GPU the sort is cheap and the
    check would stop the decode loop for a host sync, so it sorts at once. Both give the same
    candidates' prefix (ties between equal logits aside), so the same draw picks the same token.
    """
    if logits.device.type == "cpu":
        for probe in NUCLEUS_PROBES:
            if probe * 8 > logits.shape[-1]:  # a top-k of a large share of the vocabulary costs about a sort
                break
            cand, ids = logits.topk(probe, dim=-1)  # [B, P] descending
            if bool((cand.exp().sum(dim=-1, keepdim=True) > top_p * total).all()):
                return cand, ids
    return logits.sort(dim=-1, descending=True)  # [B, V]


def sample_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per stream from logits [B, V]; returns [B] long on the logits' device."""
    if config.greedy:
        return logits.argmax(dim=-1)  # [B]
    logits = logits.float()  # [B, V] (the caller's own tensor when it is float32 already)
    # the most likely token at 0 first: a tiny temperature then sends the others to -inf, not to
    # +inf and NaN (1e-45 passes the >= 0 check), and exp() of every logit is at most 1. The
    # subtraction makes the one new [B, V] tensor of the step (plain sampling exponentiates it in place).
    logits = (logits - logits.amax(dim=-1, keepdim=True)).div_(config.temperature)  # [B, V]
    top_k = config.top_k if config.top_k is not None and config.top_k < logits.shape[-1] else None
    top_p = config.top_p if config.top_p is not None and config.top_p < 1.0 else None
    if top_k is None and top_p is None:
        return _draw(logits.exp_(), generator)  # [B]
    if top_k is not None:  # top-k first, then top-p within the k (renormalised)
        cand_logits, cand_ids = logits.topk(top_k, dim=-1)  # [B, K] descending
        weights = cand_logits.exp()  # [B, K]
        total = weights.sum(dim=-1, keepdim=True)  # [B, 1]
    else:
        total = logits.exp().sum(dim=-1, keepdim=True)  # [B, 1] over the whole vocabulary
        cand_logits, cand_ids = _nucleus_candidates(logits, total, top_p)  # [B, K] descending
        weights = cand_logits.exp()  # [B, K]
    if top_p is not None:
        weights = _keep_nucleus(weights, total, top_p)  # [B, K]
    return cand_ids.gather(-1, _draw(weights, generator)[:, None])[:, 0]  # [B]
