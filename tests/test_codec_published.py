"""voxkit's codec computes the published codec's function from a checkpoint in the published layout.

The reference below is written from the published codec's description (DESIGN §5 and the public
serving code's facts): RMSNorm eps 1e-2, QK RMSNorm over all heads' channels with eps 1e-6, ALiBi
slopes ``r^i`` (r = 2^(-8/H), i = 0..H-1) on ``j - i``, a frame attending to itself and the
``window`` frames before it, LayerScale on both branches, SwiGLU, no final norm per stage;
weight-normed convs padded on the left by ``k - s`` (reflect for the patch projections, replicate
for the others); transposed convs trimmed by ``k - s`` on the right; FSQ values ``2 c / (L - 1) - 1``;
the semantic codebook ``embedding_sum / cluster_usage``. It reads the published key names only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from voxkit.checkpoint import write_folder
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import codec_params, load_codec
from voxkit.codec.layout import module_to_published_state
from voxkit.codec.model import CodecModel
from voxkit.errors import VoxkitError

ARGS = CodecArgs(dim=32, hidden_dim=48, head_dim=8, n_heads=4, n_kv_heads=4, semantic_codebook_size=32, semantic_dim=12,
                 acoustic_dim=4, acoustic_codebook_size=21)


def rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def weight(sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    g, v = sd[prefix + "conv.parametrizations.weight.original0"], sd[prefix + "conv.parametrizations.weight.original1"]
    return g * v / v.norm(dim=tuple(range(1, v.dim())), keepdim=True)


def conv(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, stride: int, mode: str) -> torch.Tensor:
    w = weight(sd, prefix)  # [C_out, C_in, K]
    pad = w.shape[-1] - stride
    return F.conv1d(F.pad(x, (pad, 0), mode=mode), w, stride=stride)


def conv_t(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, stride: int) -> torch.Tensor:
    w = weight(sd, prefix)  # [C_in, C_out, K]
    out = F.conv_transpose1d(x, w, stride=stride)
    return out[..., : out.shape[-1] - (w.shape[-1] - stride)]


def stage(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, n_layers: int, window: int) -> torch.Tensor:
    """x [B, T, D] through the published causal ALiBi sliding-window layers."""
    B, T, _ = x.shape
    H, hd = ARGS.n_heads, ARGS.head_dim
    r = 2.0 ** (-8.0 / H)
    slopes = torch.tensor([r**i for i in range(H)])  # [H]
    rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]  # [T, T] j - i
    bias = slopes[:, None, None] * rel  # [H, T, T]
    bias = bias.masked_fill((rel > 0) | (rel < -window), float("-inf"))
    for i in range(n_layers):
        p = f"{prefix}layers.{i}."
        h = rms(x, sd[p + "attention_norm.weight"], 1e-2)
        q = rms(h @ sd[p + "attention.wq.weight"].T, sd[p + "attention.q_norm.weight"], 1e-6)
        k = rms(h @ sd[p + "attention.wk.weight"].T, sd[p + "attention.k_norm.weight"], 1e-6)
        v = h @ sd[p + "attention.wv.weight"].T
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, -1) @ v  # [B, H, T, hd]
        x = x + sd[p + "attention_scale"] * (att.transpose(1, 2).reshape(B, T, H * hd) @ sd[p + "attention.wo.weight"].T)
        h = rms(x, sd[p + "ffn_norm.weight"], 1e-2)
        gate, up = h @ sd[p + "feed_forward.w1.weight"].T, h @ sd[p + "feed_forward.w3.weight"].T
        ff = (F.silu(gate) * up) @ sd[p + "feed_forward.w2.weight"].T
        x = x + sd[p + "ffn_scale"] * ff
    return x


def reference_decode(sd: dict[str, torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    table = sd["quantizer.semantic_codebook.embedding_sum"] / sd["quantizer.semantic_codebook.cluster_usage"].clamp(min=1e-5)[:, None]
    emb = torch.cat([table[codes[..., 0]], codes[..., 1:].float() * 2 / (ARGS.acoustic_codebook_size - 1) - 1], -1)  # [B, T, 16]
    x = conv(sd, "decoder_blocks.0.", emb.transpose(1, 2), 1, "replicate").transpose(1, 2)  # [B, T, D]
    block = 1
    for i, window in enumerate((2, 4, 8, 16)):  # the encoder's 16 halved after each stride-2 conv, doubled back
        x = stage(sd, f"decoder_blocks.{block}.", x, 2, window)
        block += 1
        if i < 3:
            x = conv_t(sd, f"decoder_blocks.{block}.", x.transpose(1, 2), 2).transpose(1, 2)  # [B, 2 T, D]
            block += 1
    patches = conv(sd, "output_proj.", x.transpose(1, 2), 1, "reflect")  # [B, 240, 8 T]
    return patches.transpose(1, 2).reshape(x.shape[0], -1)


def reference_encode(sd: dict[str, torch.Tensor], wave: torch.Tensor) -> torch.Tensor:
    B = wave.shape[0]
    x = conv(sd, "input_proj.", wave.view(B, -1, 240).transpose(1, 2), 1, "reflect").transpose(1, 2)  # [B, 8 T, D]
    for i, (stride, window) in enumerate(zip((2, 2, 2, 1), (16, 8, 4, 2), strict=True)):
        x = stage(sd, f"encoder_blocks.{2 * i}.", x, 2, window)
        x = conv(sd, f"encoder_blocks.{2 * i + 1}.", x.transpose(1, 2), stride, "replicate").transpose(1, 2)
    table = sd["quantizer.semantic_codebook.embedding_sum"] / sd["quantizer.semantic_codebook.cluster_usage"].clamp(min=1e-5)[:, None]
    sem = torch.cdist(x[..., :12].reshape(-1, 12), table).argmin(-1).view(B, -1)  # [B, T]
    levels = ARGS.acoustic_codebook_size
    ac = (((torch.tanh(x[..., 12:]) + 1) / 2) * (levels - 1)).round().long()  # [B, T, 4]
    return torch.cat([sem[..., None], ac], -1)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random codec written in the published layout, with every gain and norm weight randomised."""
    torch.manual_seed(0)
    model = CodecModel(ARGS)
    state = model.state_dict()
    for key, value in state.items():
        if value.is_floating_point() and (value.dim() == 1 or key.endswith("original0")):
            state[key] = value.abs().mean().clamp(min=0.3) * (1 + 0.5 * torch.randn_like(value))
    state["quantizer.semantic._codebook.cluster_size"] = torch.rand(1, 32) * 5 + 0.5
    sd = module_to_published_state(state)
    sd["audio_token_embedding.embeddings.weight"] = torch.randn(5, 3)  # a TTS table stored beside the codec
    folder = tmp_path_factory.mktemp("published")
    write_folder(folder, "native", codec_params(ARGS), sd)
    return folder, sd


def test_published_names(published: tuple[Path, dict[str, torch.Tensor]]) -> None:
    _, sd = published
    assert sd["decoder_blocks.1.layers.0.attention.q_norm.weight"].shape == (32,)  # over all 4 heads x 8
    assert "decoder_blocks.1.layers.1.ffn_scale" in sd and "output_proj.conv.parametrizations.weight.original1" in sd
    assert sd["quantizer.semantic_codebook.embedding_sum"].shape == (32, 12)


def test_decode_matches_the_published_function(published: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, sd = published
    model = load_codec(folder)
    codes = torch.cat([torch.randint(0, 32, (2, 7, 1)), torch.randint(0, 21, (2, 7, 4))], -1)
    torch.testing.assert_close(model.decode(codes), reference_decode(sd, codes), rtol=1e-4, atol=1e-5)


def test_encode_matches_the_published_function(published: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, sd = published
    model = load_codec(folder)
    wave = torch.randn(2, 6 * 1920) * 0.3
    assert torch.equal(model.encode(wave), reference_encode(sd, wave))


def test_decoder_only_checkpoint_decodes_and_refuses_to_encode(tmp_path: Path, published: tuple[Path, dict[str, torch.Tensor]]) -> None:
    _, sd = published
    decoder_only = {k: v for k, v in sd.items() if not k.startswith(("input_proj.", "encoder_blocks."))}
    write_folder(tmp_path, "native", {"audio_config": codec_params(ARGS)}, {"audio_tokenizer." + k: v for k, v in decoder_only.items()})
    model = load_codec(tmp_path)  # codec_args one section down, keys under a prefix
    codes = torch.cat([torch.randint(0, 32, (1, 5, 1)), torch.randint(0, 21, (1, 5, 4))], -1)
    torch.testing.assert_close(model.decode(codes), reference_decode(sd, codes), rtol=1e-4, atol=1e-5)
    with pytest.raises(VoxkitError, match="no encoder weights"):
        model.encode(torch.zeros(1, 1920))
