"""Next-token sampling: greedy, temperature, top-k and nucleus (top-p), batched and on-device.

Everything here is a handful of tensor ops over the whole batch ``[B, V]``: no Python loop over
the vocabulary and no host synchronisation, so the decode loop in :mod:`voxkit.lm.generate` can
run many steps without waiting for the device. The one per-stream step is drawing each stream's
uniform number from its own generator when a batch is seeded per stream (:func:`row_generators`),
so that a stream samples the same tokens whatever it is batched with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

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
        """Temperature 0, or one so small that it is 0 in float32, where the logits are divided."""
        return self.temperature <= FLOAT32_ROUNDS_TO_ZERO


FLOAT32_ROUNDS_TO_ZERO = 2.0**-150
"""Half the smallest float32 subnormal: a temperature at or below it is 0 in float32 (greedy)."""

SEED_LIMIT = 2**64
"""torch.Generator.manual_seed takes a 64-bit seed; a larger one overflows inside torch."""


def check_seed(seed: object) -> int:
    """A seed for :class:`torch.Generator`: a whole number in [0, 2^64)."""
    if not is_whole(seed) or not 0 <= seed < SEED_LIMIT:  # type: ignore[operator]
        raise OptionError(f"seed must be a whole number from 0 to 2^64 - 1, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


NUCLEUS_PROBES: tuple[int, ...] = (256, 4096)
"""How many of the most likely tokens a CPU top-p draw looks at, in turn, before it sorts them all."""


DRAW_BLOCK = 256
"""Columns per block of a two-level draw (see :func:`pick`)."""


Generators = torch.Generator | Sequence[torch.Generator] | None
"""What a draw takes its uniform numbers from: torch's default generator (None), one generator for
the whole batch, or one generator per row (see :func:`row_generators`)."""


def row_generators(seed: int | Sequence[int], rows: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per stream of a batch, each seeded with ``seed`` (or with its own of a list of
    ``rows`` seeds: one per request, as vLLM takes them).

    Why: with one generator for the batch, row i's numbers depend on how many rows come before it,
    so a request's seeded output changes with what it is batched beside. With its own generator a
    row draws what it draws alone (as a seeded request does in vLLM), and a batch of one draws the
    same numbers as the shared generator did.
    """
    seeds = row_seeds(seed, rows)
    return [torch.Generator(device=device).manual_seed(one) for one in seeds]


def row_seeds(seed: int | Sequence[int], rows: int) -> list[int]:
    """``seed`` as one checked seed per row: a whole number for every row, or a list of ``rows`` of them."""
    if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        if len(seed) != rows:
            raise OptionError(f"{len(seed)} seeds for {rows} prompts: give one seed, or one per prompt")
        return [check_seed(one) for one in seed]
    return [check_seed(seed)] * rows


def uniforms(rows: int, generator: Generators, device: torch.device) -> torch.Tensor:
    """One uniform number in [0, 1) per row -> [B, 1] float64, each row's from its own generator
    when ``generator`` is a sequence (one small draw per row: the only per-row work of a step)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        if len(generator) != rows:
            raise ValueError(f"{len(generator)} generators for {rows} rows")
        if rows == 1:
            generator = generator[0]
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(rows, 1, generator=generator, device=device, dtype=torch.float64)  # [B, 1]
    r = torch.empty(rows, 1, device=device, dtype=torch.float64)  # [B, 1]
    for row, gen in zip(r.unbind(0), generator, strict=True):
        row.uniform_(generator=gen)  # [1] in place: the number torch.rand(1, 1) would draw
    return r


def _draw(weights: torch.Tensor, generator: Generators) -> torch.Tensor:
    """One index per row of non-negative weights [B, K], with probability weight / row sum -> [B].

    Why not torch.multinomial: without replacement it draws one exponential variate per column
    (131k of them per token for a Mistral vocabulary), which costs more on a CPU than a small
    model's whole decode step. Inverting the cumulative sum needs one uniform number per row, which
    also lets each row draw from its own generator. NaN or infinite logits (a broken model), or a
    row with every token masked, are an error, as torch.multinomial made them.
    """
    r = uniforms(weights.shape[0], generator, weights.device)  # [B, 1] in [0, 1)
    return pick(weights, r)


def pick(weights: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The index of each row of weights [B, K] (>= 0) whose cumulative share first reaches 1 - r
    (r [B, 1] float64 in [0, 1)) -> [B]: the inverse of the cumulative distribution.

    Why two levels: a float32 running sum over 131k columns stores each prefix to 7 digits of the
    total, which rounds every token's share to a multiple of about 1e-7 (tokens below that could
    never be drawn, others drifted by several per cent); a float64 running sum costs 8x more. So
    blocks of :data:`DRAW_BLOCK` columns are summed (in float64), the block is drawn from the
    blocks' float64 running sum, then the column from the chosen block's. ``u`` lies in
    (0, total] and each search takes the first entry that reaches it, so a column of weight zero
    (a masked token) is never chosen; rounding that sends a search one past the last column of
    weight is clamped back to it.
    """
    B, K = weights.shape
    if K <= DRAW_BLOCK:  # a candidate set (top-k, the nucleus probe): one level
        cdf = weights.double().cumsum(dim=-1)  # [B, K] float64, non-decreasing
        u = (1.0 - r).mul_(_checked_total(cdf))  # [B, 1] in (0, total]
        return _last_weighted(torch.searchsorted(cdf, u), weights)[:, 0]  # [B]
    pad = -K % DRAW_BLOCK
    blocks = F.pad(weights, (0, pad)).view(B, -1, DRAW_BLOCK)  # [B, NB, 256]
    sums = blocks.sum(dim=-1, dtype=torch.float64)  # [B, NB]
    cdf = sums.cumsum(dim=-1)  # [B, NB] float64, non-decreasing
    u = (1.0 - r).mul_(_checked_total(cdf))  # [B, 1] in (0, total]
    block = _last_weighted(torch.searchsorted(cdf, u), sums)  # [B, 1]
    before = torch.where(block > 0, cdf.gather(-1, (block - 1).clamp_(min=0)), 0.0)  # [B, 1] mass of the blocks before
    inner = blocks.gather(1, block[:, :, None].expand(-1, -1, DRAW_BLOCK))[:, 0]  # [B, 256]
    column = torch.searchsorted(inner.double().cumsum(dim=-1), u - before)  # [B, 1]
    return (block * DRAW_BLOCK + _last_weighted(column, inner))[:, 0]  # [B]


def _checked_total(cdf: torch.Tensor) -> torch.Tensor:
    """The rows' totals [B, 1] of running sums [B, N]; NaN, infinity or nothing to draw is an error."""
    total = cdf[:, -1:]  # [B, 1]
    if cdf.device.type == "cpu":
        if not bool((total.isfinite() & (total > 0)).all()):
            raise ValueError("cannot sample: the logits hold NaN or infinity, or every token is masked")
    else:  # no host sync in a GPU decode loop: the check runs on the device
        torch._assert_async((total.isfinite() & (total > 0)).all())
    return total


def _last_weighted(index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``index`` [B, 1] moved back to the last column of ``weights`` [B, N] with weight where it lies past it."""
    columns = torch.arange(weights.shape[-1], device=weights.device)  # [N]
    last = torch.where(weights > 0, columns, -1).amax(dim=-1, keepdim=True)  # [B, 1]
    return torch.minimum(index, last)


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


def sample_next(logits: torch.Tensor, config: SamplingConfig, generator: Generators = None) -> torch.Tensor:
    """Pick one token per stream from logits [B, V]; returns [B] long on the logits' device.

    ``generator``: None (torch's default), one for the batch, or a sequence of one per row, which
    makes each row's token independent of the other rows (greedy draws nothing either way)."""
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
