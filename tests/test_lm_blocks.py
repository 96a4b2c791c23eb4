"""The configurable block (lm/block.py) and its parts against naive references written here.

Each feature is checked against the formula it implements: LayerNorm, the GELU MLP and a whole
Whisper-style layer (also against transformers' WhisperEncoderLayer), ALiBi slopes and biases,
Whisper's sinusoids, QK-norm, LayerScale; default args must give today's Mistral block, key for
key and number for number; invalid combinations of args must be refused with a clear message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers  # a declared test dependency: never skipped

from voxkit.lm.args import MoeArgs, TransformerArgs, YarnArgs
from voxkit.lm.attention import AttentionInputs
from voxkit.lm.block import LayerScale, TransformerBlock
from voxkit.lm.ffn import FeedForward, GeluFeedForward, MoeFeedForward, make_ffn
from voxkit.lm.norm import LayerNorm, QKNorm, RMSNorm, make_norm
from voxkit.lm.positions import ALiBi, SinusoidalPositions, alibi_bias, alibi_slopes, position_mask, sinusoids
from voxkit.lm.rope import RotaryEmbedding

TINY = dict(dim=32, n_layers=1, head_dim=8, hidden_dim=48, n_heads=4, n_kv_heads=2, vocab_size=0)
BUNDLED_PARAMS = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "realtime-tiny" / "params.json"


def tiny(**overrides: object) -> TransformerArgs:
    return TransformerArgs(**(TINY | overrides))  # type: ignore[arg-type]


def randomized(block: torch.nn.Module) -> torch.nn.Module:
    """Every parameter random (norm gains, biases and LayerScale too), so that each one matters."""
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.3 * torch.randn_like(p) + (1.0 if p.dim() == 1 else 0.0))
    return block.eval()


def offline_inputs(args: TransformerArgs, T: int) -> AttentionInputs:
    """Inputs of an offline call without a window (RoPE rotations; identity rotations otherwise)."""
    if args.positions == "rope":
        rotation = RotaryEmbedding(args).rotation(torch.arange(T))  # [1, 1, T, hd/2]
    else:
        rotation = torch.ones(1, 1, T, args.head_dim // 2, dtype=torch.complex64)  # no rotation
    return AttentionInputs(rotation=rotation, q_scale=None, masks={None: None}, plan=None)


# ----------------------------------------------------------------------------- naive references


def naive_rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def naive_layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased, as LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * w + b


def naive_gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def linear(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    out = x @ sd[f"{name}.weight"].t()
    return out + sd[f"{name}.bias"] if f"{name}.bias" in sd else out


def naive_attention(x: torch.Tensor, sd: dict[str, torch.Tensor], args: TransformerArgs, causal: bool) -> torch.Tensor:
    """Multi-head attention with explicit loops over heads; interleaved RoPE when args say so."""
    T, hd, H, Hkv = x.shape[1], args.head_dim, args.n_heads, args.n_kv_heads
    q = linear(x, sd, "attention.wq").unflatten(-1, (H, hd))  # [B, T, H, hd]
    k = linear(x, sd, "attention.wk").unflatten(-1, (Hkv, hd))
    v = linear(x, sd, "attention.wv").unflatten(-1, (Hkv, hd))
    if args.positions == "rope":
        pos = torch.arange(T, dtype=torch.float64)[:, None]  # [T, 1]
        angle = pos * args.theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)  # [T, hd/2]
        cos, sin = angle.cos().float()[:, None], angle.sin().float()[:, None]  # [T, 1, hd/2]

        def rotate(t: torch.Tensor) -> torch.Tensor:
            even, odd = t[..., 0::2], t[..., 1::2]
            return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)

        q, k = rotate(q), rotate(k)
    heads = []
    for h in range(H):
        g = h // (H // Hkv)
        scores = q[:, :, h] @ k[:, :, g].transpose(1, 2) / math.sqrt(hd)  # [B, T, T]
        if causal:
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        heads.append(scores.softmax(-1) @ v[:, :, g])  # [B, T, hd]
    return linear(torch.cat(heads, dim=-1), sd, "attention.wo")


# ----------------------------------------------------------------------------- args


def test_default_args_and_published_params_round_trip_unchanged() -> None:
    assert set(tiny().to_dict()) == {
        "dim", "n_layers", "head_dim", "hidden_dim", "n_heads", "n_kv_heads", "norm_eps", "vocab_size",
        "tied_embeddings", "use_biases", "causal", "ada_rms_norm_t_cond",
    }
    from voxkit.asr.args import RealtimeArgs

    published = json.loads(BUNDLED_PARAMS.read_text())
    assert RealtimeArgs.from_params(published).to_params() == published


def test_layout_fields_round_trip() -> None:
    args = tiny(norm="layer", mlp="gelu", positions="sinusoidal", max_seq_len=30, qk_norm=True, layer_scale=0.01, causal=False)
    data = args.to_dict()
    assert {k: data[k] for k in ("norm", "mlp", "positions", "qk_norm", "layer_scale")} == {
        "norm": "layer", "mlp": "gelu", "positions": "sinusoidal", "qk_norm": True, "layer_scale": 0.01,
    }
    assert TransformerArgs.from_dict(data) == args
    assert TransformerArgs(**data) == args
    # A file that spells out a default keeps it; one that does not, does not grow it.
    spelled = TINY | {"norm": "rms", "qk_norm": False}
    assert TransformerArgs.from_dict(spelled).to_dict() == TransformerArgs.from_dict(TINY).to_dict() | {"norm": "rms", "qk_norm": False}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"norm": "batch"}, "norm must be one of 'rms', 'layer'"),
        ({"mlp": "relu"}, "mlp must be one of 'swiglu', 'gelu'"),
        ({"positions": "learned"}, "positions must be one of"),
        ({"positions": "sinusoidal"}, "needs max_seq_len"),
        ({"positions": "sinusoidal", "max_seq_len": 8, "dim": 2, "head_dim": 1, "n_heads": 2, "n_kv_heads": 1}, "even dim >= 4"),
        ({"positions": "alibi", "rope_theta": 1e6}, "rope_theta configure RoPE"),
        ({"positions": "none", "yarn": YarnArgs()}, "yarn configure RoPE"),
        ({"head_dim": 7}, "head_dim must be even for RoPE"),
        ({"mlp": "gelu", "moe": MoeArgs(num_experts=2, num_experts_per_tok=1)}, "mixture of experts uses SwiGLU"),
        ({"layer_scale": True}, "LayerScale's initial gain"),
        ({"layer_scale": 0.0}, "positive initial gain"),
        ({"layer_scale": float("nan")}, "positive initial gain"),
        ({"qk_norm": "yes"}, "qk_norm must be true or false"),
    ],
)
def test_invalid_layouts_are_refused_with_a_clear_message(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)
    with pytest.raises(ValueError, match=message):  # the params.json path
        TransformerArgs.from_dict(TINY | overrides)


def test_rope_free_layouts_accept_an_odd_head_dim() -> None:
    assert tiny(positions="alibi", head_dim=7).head_dim == 7


# ----------------------------------------------------------------------------- norms


def test_layer_norm_matches_formula_and_computes_in_fp32() -> None:
    norm = randomized(LayerNorm(16, eps=1e-5))
    x = 3 + 2 * torch.randn(2, 5, 16)
    expected = naive_layer_norm(x, norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)
    out16 = norm(x.bfloat16())  # statistics in fp32, one rounding at the end
    assert out16.dtype == torch.bfloat16
    reference = naive_layer_norm(x.bfloat16().float(), norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(out16.float(), reference, atol=1e-3, rtol=2**-8)
    assert [n for n, _ in norm.named_parameters()] == ["weight", "bias"]


def test_make_norm_follows_args() -> None:
    assert type(make_norm(tiny(), 32)) is RMSNorm
    layer = make_norm(tiny(norm="layer", norm_eps=1e-6), 32)
    assert type(layer) is LayerNorm and layer.eps == 1e-6


def test_qk_norm_normalises_each_head_over_head_dim() -> None:
    qk = randomized(QKNorm(8, eps=1e-6))
    assert qk.q_norm.weight.shape == qk.k_norm.weight.shape == (8,)
    q, k = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8)  # GQA: fewer key heads
    qn, kn = qk(q, k)
    torch.testing.assert_close(qn, naive_rms_norm(q, qk.q_norm.weight, 1e-6))
    torch.testing.assert_close(kn, naive_rms_norm(k, qk.k_norm.weight, 1e-6))
    # Per head: scaling one head changes nothing (scale invariance), in it or in the other heads.
    scaled = q.clone()
    scaled[:, 1] *= 100.0
    torch.testing.assert_close(qk(scaled, k)[0], qn)
    # Non-contiguous heads (as after the [B, T, H, hd] -> [B, H, T, hd] transpose) work alike.
    torch.testing.assert_close(qk(q.transpose(1, 2).contiguous().transpose(1, 2), k)[0], qn)


# ----------------------------------------------------------------------------- MLPs


@pytest.mark.parametrize("bias", [False, True])
def test_gelu_mlp_matches_formula(bias: bool) -> None:
    mlp = randomized(GeluFeedForward(16, 24, bias=bias))
    names = {n for n, _ in mlp.named_parameters()}
    assert names == ({"w1.weight", "w1.bias", "w2.weight", "w2.bias"} if bias else {"w1.weight", "w2.weight"})
    x = torch.randn(2, 3, 16)
    sd = mlp.state_dict()
    expected = linear(naive_gelu(linear(x, sd, "w1")), sd, "w2")
    torch.testing.assert_close(mlp(x), expected, atol=1e-5, rtol=1e-5)


def test_make_ffn_follows_args() -> None:
    assert type(make_ffn(tiny())) is FeedForward
    assert type(make_ffn(tiny(mlp="gelu"))) is GeluFeedForward
    assert type(make_ffn(tiny(moe=MoeArgs(num_experts=2, num_experts_per_tok=1)))) is MoeFeedForward


# ----------------------------------------------------------------------------- positions


def paper_slopes(n: int) -> list[float]:
    """The ALiBi paper's recursive definition, written independently of lm/positions.py."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + paper_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32])
def test_alibi_slopes_match_the_paper(n: int) -> None:
    torch.testing.assert_close(alibi_slopes(n), torch.tensor(paper_slopes(n), dtype=torch.float32))


def test_alibi_slopes_known_values() -> None:
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [None, 3])
def test_alibi_bias_matches_explicit_formula(causal: bool, window: int | None) -> None:
    slopes = alibi_slopes(6)  # not a power of two
    q_pos = torch.tensor([[5, 6, 7], [0, 1, 2]])  # [B, T]: streams at different offsets
    k_pos = torch.tensor([[4, 5, 6, 7, -1, 3], [0, 1, 2, -1, -1, -1]])  # [B, S]: ring slots, -1 empty
    bias = alibi_bias(slopes, q_pos, k_pos, causal=causal, window=window)
    assert bias.shape == (2, 6, 3, 6) and bias.dtype == torch.float32
    for b in range(2):
        for h in range(6):
            for t in range(3):
                for s in range(6):
                    q, k = int(q_pos[b, t]), int(k_pos[b, s])
                    d = q - k
                    ok = k >= 0 and (d >= 0 if causal else True) and (window is None or abs(d) < window)
                    value = -float(slopes[h]) * (d if causal else abs(d))
                    assert bias[b, h, t, s].item() == (pytest.approx(value) if ok else float("-inf"))


def test_alibi_bias_shared_positions_broadcast_and_module() -> None:
    pos = torch.arange(5)
    bias = ALiBi(4)(pos, pos, causal=True, window=2)  # [1, H, T, S]
    assert bias.shape == (1, 4, 5, 5)
    allowed = position_mask(pos, pos, causal=True, window=2)  # [1, 1, T, S]
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    assert torch.equal(allowed[0, 0], (j <= i) & (i - j < 2))
    assert torch.equal(torch.isfinite(bias), allowed.expand_as(bias))
    with pytest.raises(ValueError, match="window must be >= 1"):
        position_mask(pos, pos, causal=True, window=0)


def test_alibi_bias_in_attention_equals_explicit_softmax() -> None:
    """The bias is additive after the 1/sqrt(hd) scaling, as ALiBi defines it."""
    q, k, v = torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8)
    pos = torch.arange(6)
    bias = alibi_bias(alibi_slopes(4), pos, pos, causal=True, window=4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    slopes = alibi_slopes(4)[:, None, None]
    d = (pos[:, None] - pos[None, :]).float()
    scores = q @ k.transpose(-1, -2) / math.sqrt(8) - slopes * d
    scores = scores.masked_fill((d < 0) | (d >= 4), float("-inf"))
    torch.testing.assert_close(out, scores.softmax(-1) @ v, atol=1e-5, rtol=1e-5)


def whisper_sinusoids(length: int, channels: int, max_timescale: float = 10000) -> torch.Tensor:
    """Whisper's formula, spelled as in its encoder."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


def test_sinusoids_match_whisper() -> None:
    table = sinusoids(1500, 384)  # Whisper tiny: 1500 positions x 384 channels
    assert table.shape == (1500, 384) and table.dtype == torch.float32
    assert torch.equal(table, whisper_sinusoids(1500, 384))
    assert torch.equal(table, transformers.models.whisper.modeling_whisper.sinusoids(1500, 384).float())
    assert torch.equal(table[0], torch.cat((torch.zeros(192), torch.ones(192))))
    with pytest.raises(ValueError, match="even channel count"):
        sinusoids(10, 7)


def test_sinusoidal_positions_lookup_and_meta_rebuild() -> None:
    module = SinusoidalPositions(12, 16)
    table = sinusoids(12, 16)
    assert torch.equal(module(torch.arange(4)), table[:4])  # [T, D]
    batched = torch.tensor([[0, 1], [10, 11]])
    assert torch.equal(module(batched), table[batched])  # [B, T, D]
    with pytest.raises(ValueError, match="outside the sinusoidal table of 12 rows"):
        module(torch.arange(13))
    assert "table" not in module.state_dict()
    with torch.device("meta"):
        meta = SinusoidalPositions(12, 16)
        alibi = ALiBi(6)
    meta.init_buffers(torch.device("cpu"))
    alibi.init_buffers(torch.device("cpu"))
    assert torch.equal(meta.table, table) and torch.equal(alibi.slopes, alibi_slopes(6))


# ----------------------------------------------------------------------------- the block

MISTRAL_KEYS = [
    "attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
    "attention_norm.weight", "ffn_norm.weight",
    "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight",
]  # fmt: skip
VOXTRAL_ADA_KEYS = [
    "attention.wq.weight", "attention.wq.bias", "attention.wk.weight", "attention.wv.weight", "attention.wv.bias",
    "attention.wo.weight", "attention.wo.bias", "attention_norm.weight", "ffn_norm.weight",
    "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w2.bias", "feed_forward.w3.weight",
    "ada_rms_norm_t_cond.0.weight", "ada_rms_norm_t_cond.2.weight",
]  # fmt: skip
WHISPER_KEYS = [
    "attention.wq.weight", "attention.wq.bias", "attention.wk.weight", "attention.wv.weight", "attention.wv.bias",
    "attention.wo.weight", "attention.wo.bias", "attention_norm.weight", "attention_norm.bias",
    "ffn_norm.weight", "ffn_norm.bias", "feed_forward.w1.weight", "feed_forward.w1.bias",
    "feed_forward.w2.weight", "feed_forward.w2.bias",
]  # fmt: skip


def test_default_block_keeps_the_native_keys() -> None:
    """The published native layout (DESIGN.md §3), in the order the old block registered them."""
    assert list(TransformerBlock(tiny(), 0).state_dict()) == MISTRAL_KEYS
    voxtral = tiny(use_biases=True, ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=8)
    assert list(TransformerBlock(voxtral, 0).state_dict()) == VOXTRAL_ADA_KEYS
    moe = TransformerBlock(tiny(moe=MoeArgs(num_experts=2, num_experts_per_tok=1)), 0).state_dict()
    assert [k for k in moe if k.startswith("feed_forward")] == [
        "feed_forward.gate.weight",
        *(f"feed_forward.experts.{e}.w{i}.weight" for e in range(2) for i in (1, 2, 3)),
    ]


def test_whisper_bias_pattern_and_layer_scale_keys() -> None:
    whisper = tiny(norm="layer", mlp="gelu", positions="none", causal=False, use_biases=True)
    assert list(TransformerBlock(whisper, 0).state_dict()) == WHISPER_KEYS
    scaled = list(TransformerBlock(tiny(layer_scale=0.01, qk_norm=True), 0).state_dict())
    qk = ["attention.qk_norm.q_norm.weight", "attention.qk_norm.k_norm.weight"]  # per-head gains [hd] inside attention
    assert sorted(scaled) == sorted([*MISTRAL_KEYS, *qk, "attention_scale.gamma", "ffn_scale.gamma"])
    assert scaled[-2:] == ["attention_scale.gamma", "ffn_scale.gamma"]


@pytest.mark.parametrize("voxtral", [False, True])
def test_default_block_equals_the_mistral_formula(voxtral: bool) -> None:
    """RMSNorm, interleaved RoPE, causal GQA, SwiGLU (and Voxtral biases + Ada-RMSNorm gain)."""
    args = tiny(use_biases=True, ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=8) if voxtral else tiny()
    block = randomized(TransformerBlock(args, 0))
    sd = block.state_dict()
    x, T = torch.randn(2, 7, 32), 7
    gain = 1 + 0.2 * torch.randn(2, 1, 32) if voxtral else None
    with torch.no_grad():
        out = block(x, offline_inputs(args, T), gain)
    eps = args.norm_eps
    h = x + naive_attention(naive_rms_norm(x, sd["attention_norm.weight"], eps), sd, args, causal=True)
    n = naive_rms_norm(h, sd["ffn_norm.weight"], eps) * (gain if gain is not None else 1)
    expected = h + linear(F.silu(linear(n, sd, "feed_forward.w1")) * linear(n, sd, "feed_forward.w3"), sd, "feed_forward.w2")
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_whisper_block_equals_a_hand_written_whisper_layer_and_transformers() -> None:
    args = tiny(norm="layer", mlp="gelu", positions="none", causal=False, use_biases=True, n_kv_heads=4)
    block = randomized(TransformerBlock(args, 0))
    sd = block.state_dict()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        out = block(x, offline_inputs(args, 9), None)
    eps = args.norm_eps
    h = x + naive_attention(naive_layer_norm(x, sd["attention_norm.weight"], sd["attention_norm.bias"], eps), sd, args, causal=False)
    n = naive_layer_norm(h, sd["ffn_norm.weight"], sd["ffn_norm.bias"], eps)
    expected = h + linear(naive_gelu(linear(n, sd, "feed_forward.w1")), sd, "feed_forward.w2")
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)

    # The same weights in transformers' Whisper encoder layer (k_proj without bias, as ours).
    config = transformers.WhisperConfig(d_model=32, encoder_attention_heads=4, encoder_ffn_dim=48, activation_function="gelu")
    hf = transformers.models.whisper.modeling_whisper.WhisperEncoderLayer(config).eval()
    names = {
        "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk", "self_attn.v_proj": "attention.wv",
        "self_attn.out_proj": "attention.wo", "self_attn_layer_norm": "attention_norm", "final_layer_norm": "ffn_norm",
        "fc1": "feed_forward.w1", "fc2": "feed_forward.w2",
    }  # fmt: skip
    hf_state = {f"{hf_name}.{p}": sd[f"{ours}.{p}"] for hf_name, ours in names.items() for p in ("weight", "bias") if f"{ours}.{p}" in sd}
    hf.load_state_dict(hf_state, strict=True)
    with torch.no_grad():
        reference = hf(x, None)
    reference = reference[0] if isinstance(reference, tuple) else reference
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


def test_layer_scale_init_and_effect() -> None:
    scale = LayerScale(32, 0.01)
    assert scale.gamma.shape == (32,) and torch.all(scale.gamma == 0.01)
    args = tiny(layer_scale=0.01)
    block = randomized(TransformerBlock(args, 0))
    with torch.no_grad():
        block.attention_scale.gamma.fill_(0.01)
        block.ffn_scale.gamma.copy_(0.05 * torch.randn(32))
    x = torch.randn(2, 6, 32)
    inputs = offline_inputs(args, 6)
    with torch.no_grad():
        out = block(x, inputs, None)
        h = x + 0.01 * block.attention(block.attention_norm(x), inputs)
        expected = h + block.ffn_scale.gamma * block.feed_forward(block.ffn_norm(h))
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
        block.attention_scale.gamma.zero_()
        block.ffn_scale.gamma.zero_()
        assert torch.equal(block(x, inputs, None), x)  # zero gains: the block is the identity
    # The gains learn: they receive gradients through the residual branches.
    block.attention_scale.gamma.data.fill_(0.01)
    block.ffn_scale.gamma.data.fill_(0.01)
    block(x, inputs, None).square().sum().backward()
    assert block.attention_scale.gamma.grad is not None and block.attention_scale.gamma.grad.abs().sum() > 0
    assert block.ffn_scale.gamma.grad is not None and block.ffn_scale.gamma.grad.abs().sum() > 0


def test_delay_gain_applies_to_a_layer_norm_too() -> None:
    """Ada-RMSNorm's gain scales whatever the pre-FFN norm is (here a LayerNorm)."""
    args = tiny(norm="layer", ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=8)
    block = randomized(TransformerBlock(args, 0))
    x, gain = torch.randn(2, 5, 32), 1 + 0.2 * torch.randn(2, 1, 32)
    inputs = offline_inputs(args, 5)
    with torch.no_grad():
        h = x + block.attention(block.attention_norm(x), inputs)
        sd = block.state_dict()
        n = naive_layer_norm(h, sd["ffn_norm.weight"], sd["ffn_norm.bias"], args.norm_eps) * gain
        torch.testing.assert_close(block(x, inputs, gain), h + block.feed_forward(n), atol=1e-5, rtol=1e-5)


def test_delay_conditioned_block_needs_its_gain() -> None:
    args = tiny(ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=8)
    with pytest.raises(ValueError, match="pass its gain"):
        TransformerBlock(args, 0)(torch.randn(1, 3, 32), offline_inputs(args, 3), None)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, None),
        ({"use_biases": True, "ada_rms_norm_t_cond": True, "sliding_window": 4}, None),
        ({"norm": "layer"}, "LayerNorm"),
        ({"mlp": "gelu"}, "GELU MLP"),
        ({"moe": MoeArgs(num_experts=2, num_experts_per_tok=1)}, "mixture of experts"),
        ({"positions": "alibi"}, "alibi positions"),
        ({"positions": "sinusoidal", "max_seq_len": 16}, "sinusoidal positions"),
        ({"positions": "none"}, "none positions"),
        ({"qk_norm": True}, "QK-norm"),
        ({"layer_scale": 0.01}, "LayerScale"),
        ({"causal": False}, "bidirectional"),
    ],
)
def test_fused_step_support_names_what_the_kernel_lacks(overrides: dict, reason: str | None) -> None:
    support = TransformerBlock(tiny(**overrides), 0).fused_step_support()
    if reason is None:
        assert support is None
    else:
        assert support is not None and reason in support

