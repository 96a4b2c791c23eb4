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


def _top_p_filter(sorted_logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (with -inf) the tail of descending-sorted logits [B, K] beyond probability mass top_p."""
    probs = sorted_logits.softmax(dim=-1)  # [B, K]
    mass_before = probs.cumsum(dim=-1) - probs  # [B, K] mass of the strictly more likely tokens
    return sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))  # first column always kept


def sample_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per stream from logits [B, V]; returns [B] long on the logits' device."""
    if config.greedy:
        return logits.argmax(dim=-1)  # [B]
    logits = logits.float()  # [B, V] (the caller's own tensor when it is float32 already)
    # the most likely token at 0 first: a tiny temperature then sends the others to -inf, not to
    # +inf and NaN (1e-45 passes the >= 0 check). The subtraction makes the one new [B, V] tensor
    # of the step; the division works in place on it.
    logits = (logits - logits.amax(dim=-1, keepdim=True)).div_(config.temperature)  # [B, V]
    top_k = config.top_k if config.top_k is not None and config.top_k < logits.shape[-1] else None
    top_p = config.top_p if config.top_p is not None and config.top_p < 1.0 else None
    if top_k is None and top_p is None:
        probs = logits.softmax(dim=-1)  # [B, V]
        return torch.multinomial(probs, 1, generator=generator)[:, 0]  # [B]
    # Work on the candidate set only: the top-k (already sorted) or, for top-p alone, a full sort.
    if top_k is not None:
        cand_logits, cand_ids = logits.topk(top_k, dim=-1)  # [B, K] descending
    else:
        cand_logits, cand_ids = logits.sort(dim=-1, descending=True)  # [B, V]
    if top_p is not None:
        cand_logits = _top_p_filter(cand_logits, top_p)  # [B, K]
    probs = cand_logits.softmax(dim=-1)  # [B, K]
    choice = torch.multinomial(probs, 1, generator=generator)  # [B, 1] index into the candidates
    return cand_ids.gather(-1, choice)[:, 0]  # [B]
