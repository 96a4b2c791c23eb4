"""Next-token sampling: greedy, temperature, top-k and nucleus (top-p), batched and on-device.

Everything here is a handful of tensor ops over the whole batch ``[B, V]``: no Python loop over
streams or the vocabulary and no host synchronisation, so the decode loop in
:mod:`voxkit.lm.generate` can run many steps without waiting for the device.
"""

from __future__ import annotations

import dataclasses

import torch


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
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _top_p_filter(sorted_logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (with -inf) the tail of descending-sorted logits [B, K] beyond probability mass top_p."""
    probs = sorted_logits.softmax(dim=-1)  # [B, K]
    mass_before = probs.cumsum(dim=-1) - probs  # [B, K] mass of the strictly more likely tokens
    return sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))  # first column always kept


def sample_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per stream from logits [B, V]; returns [B] long on the logits' device."""
    if config.greedy:
        return logits.argmax(dim=-1)  # [B]
    logits = logits.float() / config.temperature  # [B, V]
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
