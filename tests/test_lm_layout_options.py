"""The backbone's options for the published codec's stage layout: ALiBi slopes from 1, QK-norm over
all heads, stacks without a final norm."""

from __future__ import annotations

import pytest
import torch

from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.norm import QKNorm
from voxkit.lm.positions import alibi_slopes


def tiny(**overrides: object) -> TransformerArgs:
    base = dict(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=0)
    base.update(overrides)
    return TransformerArgs(**base)  # type: ignore[arg-type]


def test_alibi_slopes_from_one_start_at_slope_one() -> None:
    """The published codec's convention: 2^(-8 i / n) for i = 0..n-1 (the paper's shifted by one head)."""
    assert alibi_slopes(4, first=0).tolist() == [1.0, 2.0**-2, 2.0**-4, 2.0**-6]
    assert alibi_slopes(6, first=0).tolist() == [1.0, 2.0**-2, 2.0**-4, 2.0**-6, 1.0, 2.0**-2]  # 2m sequence, every other
    model = Transformer(tiny(positions="alibi", alibi_slopes="from_one"))
    assert model.alibi is not None and model.alibi.slopes[0] == 1.0


def test_qk_norm_over_all_heads_normalises_the_concatenated_heads() -> None:
    torch.manual_seed(0)
    norm = QKNorm(4, 1e-6, n_heads=3, n_kv_heads=1, all_heads=True)
    assert norm.q_norm.weight.shape == (12,) and norm.k_norm.weight.shape == (4,)
    with torch.no_grad():
        norm.q_norm.weight.uniform_(0.5, 1.5)
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 1, 5, 4)
    got_q, _ = norm(q, k)
    flat = q.transpose(1, 2).reshape(2, 5, 12)  # [B, T, H hd]
    want = flat * torch.rsqrt(flat.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.q_norm.weight
    torch.testing.assert_close(got_q, want.view(2, 5, 3, 4).transpose(1, 2))
    with pytest.raises(ValueError, match="qk_norm_scope"):
        tiny(qk_norm=True, qk_norm_scope="heads")


def test_no_final_norm_and_new_layout_keys_stay_out_of_default_params() -> None:
    model = Transformer(tiny(final_norm=False))
    assert not any(k.startswith("norm.") for k in model.state_dict())
    x = torch.randn(1, 3, model.args.dim)
    torch.testing.assert_close(model.forward_embeddings(x), model.forward_embeddings(x, state=model.init_state(1, capacity=8)))
    assert {"qk_norm_scope", "alibi_slopes", "final_norm"}.isdisjoint(tiny().to_dict())
