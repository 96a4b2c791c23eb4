"""The sampler's draws: right distribution, masked tokens never chosen, the CPU top-p shortcut equal to a full sort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import voxkit.lm.sampling as sampling
from voxkit.lm.sampling import SamplingConfig, sample_next


def _counts(logits: torch.Tensor, config: SamplingConfig, draws: int, seed: int = 0) -> torch.Tensor:
    """How often each token was drawn from logits [V] in ``draws`` draws (one batch row per draw)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = sample_next(logits.expand(draws, -1).contiguous(), config, gen)  # [draws]
    return torch.bincount(tokens, minlength=logits.shape[-1]).double()  # [V]


def test_plain_sampling_follows_the_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -30.0])
    counts = _counts(logits, SamplingConfig(temperature=1.0), 40_000)
    expected = logits.double().softmax(-1) * counts.sum()
    # chi-square over the four tokens with real mass (4 degrees of freedom minus one): 16.3 is p = 0.001
    real = expected > 5
    chi2 = float((((counts - expected) ** 2)[real] / expected[real]).sum())
    assert chi2 < 16.3
    assert counts[-1] <= 2  # e^-30 of the mass: practically never


def test_temperature_sharpens_and_flattens() -> None:
    logits = torch.tensor([1.0, 0.0, -1.0])
    cold = _counts(logits, SamplingConfig(temperature=0.25), 20_000)
    hot = _counts(logits, SamplingConfig(temperature=4.0), 20_000)
    for counts, t in ((cold, 0.25), (hot, 4.0)):
        expected = (logits.double() / t).softmax(-1)
        assert torch.allclose(counts / counts.sum(), expected, atol=0.015)


def test_a_token_of_zero_weight_is_never_drawn_wherever_it_sits() -> None:
    # masked tokens first, between and last: the inverse-CDF search must skip them all
    logits = torch.tensor([float("-inf"), 0.0, float("-inf"), float("-inf"), 1.0, float("-inf")])
    counts = _counts(logits, SamplingConfig(temperature=1.0), 20_000)
    assert counts[[0, 2, 3, 5]].sum() == 0
    assert counts[1] > 0 and counts[4] > 0


def test_top_p_keeps_exactly_the_nucleus() -> None:
    probs = torch.tensor([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])
    logits = probs.log()
    # mass before each token: 0, .40, .65, .80, .90, .96 -> top_p 0.75 keeps the first three
    counts = _counts(logits, SamplingConfig(temperature=1.0, top_p=0.75), 30_000)
    assert counts[3:].sum() == 0
    kept = probs[:3] / probs[:3].sum()
    assert torch.allclose(counts[:3] / counts.sum(), kept.double(), atol=0.015)


def test_top_k_then_top_p_renormalises_within_the_k() -> None:
    probs = torch.tensor([0.31, 0.29, 0.20, 0.20])
    # top-2 leaves [0.52, 0.48]: top_p 0.5 keeps the first only (the second's mass before is 0.52)
    counts = _counts(probs.log(), SamplingConfig(temperature=1.0, top_k=2, top_p=0.5), 2_000)
    assert counts[0] == counts.sum()


def _peaked_logits(rows: int, vocab: int, seed: int) -> torch.Tensor:
    """Zipf-like rows [rows, vocab] (a language model's shape of distribution), shuffled per row."""
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.arange(1, vocab + 1, dtype=torch.float32)
    base = -1.3 * ranks.log()  # [vocab]
    perm = torch.argsort(torch.rand(rows, vocab, generator=gen), dim=-1)  # [rows, vocab]
    return base[perm] + 0.1 * torch.randn(rows, vocab, generator=gen)  # [rows, vocab]


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_cpu_top_p_shortcut_draws_what_a_full_sort_draws(top_p: float, monkeypatch: pytest.MonkeyPatch) -> None:
    logits = _peaked_logits(16, 10_000, seed=1)  # [16, 10000]
    config = SamplingConfig(temperature=0.9, top_p=top_p)
    sorts: list[int] = []
    real_sort = torch.Tensor.sort

    def counting_sort(self: torch.Tensor, *args: object, **kwargs: object) -> object:
        sorts.append(self.shape[-1])
        return real_sort(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "sort", counting_sort)
    fast = [sample_next(logits, config, torch.Generator().manual_seed(s)) for s in range(10)]  # 10 x [16]
    took_shortcut = not sorts
    monkeypatch.setattr(sampling, "NUCLEUS_PROBES", ())
    full = [sample_next(logits, config, torch.Generator().manual_seed(s)) for s in range(10)]
    assert sorts, "with no probes the full vocabulary is sorted"
    assert all(torch.equal(a, b) for a, b in zip(fast, full, strict=True))
    if top_p < 0.99:  # the nucleus of these rows fits in the probes; at 0.99 it may not
        assert took_shortcut


def test_flat_distribution_falls_back_to_the_full_sort() -> None:
    # nearly uniform over 20k tokens: top_p 0.9 needs ~18k of them, more than any probe holds
    logits = 0.01 * torch.randn(4, 20_000, generator=torch.Generator().manual_seed(0))  # [4, 20000]
    counts = torch.zeros(20_000)
    for s in range(50):
        tokens = sample_next(logits, SamplingConfig(temperature=1.0, top_p=0.9), torch.Generator().manual_seed(s))
        counts += torch.bincount(tokens, minlength=20_000)
    assert int((counts > 0).sum()) > 150  # draws spread far beyond the first 4,096 candidates' share


def test_batched_rows_draw_independently_and_reproducibly() -> None:
    logits = _peaked_logits(8, 1000, seed=2)
    config = SamplingConfig(temperature=1.0, top_p=0.95)
    a = sample_next(logits, config, torch.Generator().manual_seed(7))
    b = sample_next(logits, config, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.shape == (8,) and a.dtype == torch.long
    assert all(0 <= int(t) < 1000 for t in a)


def test_the_draw_inverts_the_exact_cumulative_distribution_over_a_large_vocabulary() -> None:
    """Every token keeps its share, however small, in a 131k vocabulary: a float32 running sum rounded
    each share to a multiple of ~1e-7 of the total (tokens below it could never be drawn)."""
    gen = torch.Generator().manual_seed(0)
    weights = (3 * torch.randn(1, 131_072, generator=gen)).softmax(-1)  # [1, V] heavy-tailed
    weights[0, 1000:1100] = 0.0  # masked tokens in the middle
    cdf = np.cumsum(weights[0].double().numpy())  # float64 reference
    rs = torch.rand(400, generator=gen, dtype=torch.float64)
    rs[:3] = torch.tensor([0.0, 1 - 2**-53, 0.5])
    for r in rs:
        u = (1.0 - float(r)) * cdf[-1]
        expected = int(np.searchsorted(cdf, u, side="left"))
        assert int(sampling.pick(weights, r.view(1, 1))[0]) == expected
    # a token of share 1e-9 at the last place is reachable from the u just above its predecessors' mass
    tiny = torch.ones(1, 131_072)
    tiny[0, -1] = 1e-9 * 131_071
    below = float(torch.ones(131_071, dtype=torch.float64).sum()) / (131_071 + tiny[0, -1].double())
    r = torch.tensor([[(1 - float(below)) / 2]], dtype=torch.float64)  # u between the first 131,071 and the total
    assert int(sampling.pick(tiny, r)[0]) == 131_071


def test_broken_logits_are_an_error_and_a_vanishing_temperature_is_greedy() -> None:
    gen = torch.Generator().manual_seed(0)
    for logits in (torch.tensor([[0.0, float("nan"), 1.0]]), torch.full((1, 4), float("-inf")), torch.tensor([[0.0, float("inf")]])):
        for config in (SamplingConfig(1.0), SamplingConfig(1.0, top_p=0.9), SamplingConfig(1.0, top_k=2)):
            with pytest.raises(ValueError, match="NaN or infinity"):
                sample_next(logits, config, gen)
    logits = torch.tensor([[0.0, -1.0, 3.0, 2.9]])
    assert SamplingConfig(temperature=1e-46).greedy and not SamplingConfig(temperature=1e-44).greedy
    assert int(sample_next(logits, SamplingConfig(temperature=1e-46), gen)[0]) == 2
    assert int(sample_next(logits, SamplingConfig(temperature=1e-44), gen)[0]) == 2
