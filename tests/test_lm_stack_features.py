"""The configurable stack end to end: codec-, Whisper- and flow-head-style configurations of lm's
Transformer against a naive loop written from the formulas, streaming == offline, and the fused
CPU step refusing what it does not implement."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from test_lm_fused_step import fused_calls  # noqa: F401 (fixture)
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.fusion import fuse_projections


def args(**overrides: object) -> TransformerArgs:
    base = dict(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=0, norm_eps=1e-5)
    base.update(overrides)
    return TransformerArgs(**base)  # type: ignore[arg-type]


CONFIGS = {
    # codec (DESIGN §5): QK-norm, LayerScale, ALiBi, causal sliding windows per layer
    "codec": args(qk_norm=True, layer_scale=0.01, positions="alibi", sliding_window=[3, 5]),
    # Whisper-style encoder (DESIGN §7): LayerNorm, GELU MLP, sinusoidal positions, bidirectional, biases
    "whisper": args(norm="layer", mlp="gelu", positions="sinusoidal", max_seq_len=64, causal=False, use_biases=True),
    # flow-matching head (DESIGN §6): a small bidirectional stack
    "flow-head": args(n_layers=3, causal=False, rope_theta=1e4),
    # the same features on a causal RoPE stack with a window (streams)
    "rope-qk-ls": args(qk_norm=True, layer_scale=0.5, sliding_window=4, rope_theta=1e4),
    "alibi-full": args(positions="alibi", n_heads=3, n_kv_heads=1, head_dim=8),
}


def build(a: TransformerArgs) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(a).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # norms, biases, LayerScale: non-trivial values
                p.add_(0.3 * torch.randn_like(p))
    return model


def _norm(x: torch.Tensor, module: torch.nn.Module, a: TransformerArgs) -> torch.Tensor:
    if a.norm == "layer":
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + module.eps) * module.weight


def _slopes(n: int) -> list[float]:
    m = 2 ** math.floor(math.log2(n))
    first = [2 ** (-8 * i / m) for i in range(1, m + 1)]
    extra = [2 ** (-8 * i / (2 * m)) for i in range(1, 2 * m + 1)][0::2][: n - m]
    return first + extra


def naive(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    """One sequence x [T, D] through the stack, one head and one query at a time."""
    a = model.args
    T, D = x.shape
    hd, H, Hkv = a.head_dim, a.n_heads, a.n_kv_heads
    if a.positions == "sinusoidal":
        half = D // 2
        inc = math.log(10000.0) / (half - 1)
        # Whisper's table is float32 (as transformers stores it): computed in float32, then widened
        t = torch.arange(T, dtype=torch.float32)[:, None] * torch.exp(-inc * torch.arange(half, dtype=torch.float32))[None]
        x = x + torch.cat([t.sin(), t.cos()], dim=1).double()
    for i, layer in enumerate(model.layers):
        attn = layer.attention
        h = _norm(x, layer.attention_norm, a)
        lin = lambda m, v: v @ m.weight.T + (m.bias if m.bias is not None else 0)  # noqa: E731
        q, k, v = lin(attn.wq, h).view(T, H, hd), lin(attn.wk, h).view(T, Hkv, hd), lin(attn.wv, h).view(T, Hkv, hd)
        if a.qk_norm:
            qn, kn = attn.qk_norm.q_norm, attn.qk_norm.k_norm
            q = q / torch.sqrt((q * q).mean(-1, keepdim=True) + qn.eps) * qn.weight
            k = k / torch.sqrt((k * k).mean(-1, keepdim=True) + kn.eps) * kn.weight
        if a.positions == "rope":
            freqs = 1.0 / (a.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
            ang = torch.arange(T, dtype=torch.float64)[:, None] * freqs  # [T, hd/2]
            c, s = ang.cos()[:, None], ang.sin()[:, None]

            def rot(z: torch.Tensor, c: torch.Tensor = c, s: torch.Tensor = s) -> torch.Tensor:
                z0, z1 = z[..., 0::2], z[..., 1::2]
                return torch.stack([z0 * c - z1 * s, z0 * s + z1 * c], dim=-1).flatten(-2)

            q, k = rot(q), rot(k)
        window = a.window_for_layer(i)
        slopes = _slopes(H)
        out = torch.zeros(T, H, hd, dtype=x.dtype)
        for head in range(H):
            kh = head // (H // Hkv)
            for qi in range(T):
                scores, keys = [], []
                for kj in range(T):
                    d = qi - kj
                    if a.causal and (d < 0 or (window is not None and d >= window)):
                        continue
                    if not a.causal and window is not None and abs(d) >= window:
                        continue
                    score = float(q[qi, head] @ k[kj, kh]) / math.sqrt(hd)
                    if a.positions == "alibi":
                        score -= slopes[head] * abs(d)
                    scores.append(score)
                    keys.append(kj)
                weights = torch.softmax(torch.tensor(scores, dtype=x.dtype), 0)
                out[qi, head] = sum(w * v[kj, kh] for w, kj in zip(weights, keys, strict=True))
        branch = lin(attn.wo, out.reshape(T, H * hd))
        if a.layer_scale is not None:
            branch = branch * layer.attention_scale.gamma
        x = x + branch
        n = _norm(x, layer.ffn_norm, a)
        ffn = layer.feed_forward
        hidden = F.gelu(lin(ffn.w1, n)) if a.mlp == "gelu" else F.silu(lin(ffn.w1, n)) * lin(ffn.w3, n)
        branch = lin(ffn.w2, hidden)
        if a.layer_scale is not None:
            branch = branch * layer.ffn_scale.gamma
        x = x + branch
    return _norm(x, model.norm, a)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stack_equals_the_naive_formulas(name: str) -> None:
    model = build(CONFIGS[name])
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    with torch.no_grad():
        out = model.forward_embeddings(x)  # [2, 9, 32]
        for b in range(2):
            torch.testing.assert_close(out[b], naive(model, x[b]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["codec", "rope-qk-ls", "alibi-full"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_streaming_equals_offline(name: str, chunk: int) -> None:
    a = CONFIGS[name]
    model = build(a)
    x = torch.randn(2, 24, 32, dtype=torch.float64)
    with torch.no_grad():
        full = model.forward_embeddings(x)
        capacity = (a.max_window or 24) + chunk  # the ring wraps when windowed
        with model.streaming(2, capacity=capacity) as state:
            steps = [model.forward_embeddings(x[:, t : t + chunk], state=state) for t in range(0, 24, chunk)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-9, atol=1e-9)


def test_a_bidirectional_stack_refuses_to_stream() -> None:
    model = build(CONFIGS["flow-head"])
    with model.streaming(1, capacity=8) as state, pytest.raises(ValueError, match="bidirectional"):
        model.forward_embeddings(torch.randn(1, 2, 32, dtype=torch.float64), state=state)


@pytest.mark.parametrize("feature", ["qk_norm", "layer_scale", "alibi"])
def test_fused_cpu_step_refuses_blocks_it_does_not_implement(feature: str, fused_calls: list[bool]) -> None:  # noqa: F811
    """The C block step computes the plain block only: any other takes the modules, whose answer is right."""
    extra = {"qk_norm": dict(qk_norm=True), "layer_scale": dict(layer_scale=0.3), "alibi": dict(positions="alibi")}[feature]
    plain_args = args(sliding_window=4, rope_theta=1e4, vocab_size=50)
    featured = args(sliding_window=4, vocab_size=50, **({"rope_theta": 1e4} if feature != "alibi" else {}), **extra)
    tokens = torch.randint(0, 50, (2, 12))
    for a, fusable in ((plain_args, True), (featured, False)):
        torch.manual_seed(0)
        model = Transformer(a).eval()
        fuse_projections(model)
        fused_calls.clear()
        with torch.no_grad():
            full = model(tokens)
            with model.streaming(2) as state:
                steps = torch.cat([model(tokens[:, t : t + 1], state=state) for t in range(12)], dim=1)
        torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)
        if fusable:
            from cpu_kernel_helpers import CAN_BUILD

            assert all(fused_calls) == CAN_BUILD
        else:
            assert fused_calls and not any(fused_calls)
