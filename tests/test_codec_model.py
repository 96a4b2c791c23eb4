"""The codec on tiny configs: quantizer round trips, streaming == one-shot, causality, bitrate, usage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxkit.codec import Codec
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import load_codec, save_codec
from voxkit.codec.model import CodecModel
from voxkit.codec.quantizer import (
    FSQ_BYPASSED,
    FSQ_DITHERED,
    CodecQuantizer,
    batch_perplexity,
    codebook_usage,
    draw_dropout,
)
from voxkit.conv import PRODUCT_MAX_ROWS, CausalConv1d, CausalConvTranspose1d
from voxkit.errors import VoxkitError

FRAME = 1920


def tiny_args(**kw: object) -> CodecArgs:
    base: dict[str, object] = dict(
        dim=32, hidden_dim=64, head_dim=8, n_heads=4, n_kv_heads=2, semantic_codebook_size=64, semantic_dim=16, acoustic_dim=4,
        acoustic_codebook_size=5,
    )
    base.update(kw)
    return CodecArgs(**base)  # type: ignore[arg-type]


def tiny_codec() -> CodecModel:
    """A tiny random codec whose codebook entries are drawn from its own latents (shared by the codec tests)."""
    torch.manual_seed(0)
    m = CodecModel(tiny_args()).eval()
    with torch.no_grad():  # codebook entries drawn from real latents, so that codes vary from frame to frame
        latents = m.encode_latent(torch.randn(4, 16 * FRAME) * 0.3)[..., :16].reshape(-1, 16)  # [64, 16]
        m.quantizer.semantic._codebook.embed.copy_(latents[None])
    return m


@pytest.fixture(scope="module")
def model() -> CodecModel:
    return tiny_codec()


def chunks(total: int, rng: np.random.Generator, most: int) -> list[int]:
    """Random chunk lengths (>= 1) summing to total."""
    sizes = []
    while total:
        n = int(rng.integers(1, most + 1)) if total > 1 else 1
        n = min(n, total)
        sizes.append(n)
        total -= n
    return sizes


# --------------------------------------------------------------------------- shared streaming convs


@pytest.mark.parametrize("pad_mode", ["zeros", "replicate", "reflect"])
@pytest.mark.parametrize("kernel,stride", [(7, 1), (4, 2), (3, 1)])
def test_causal_conv_streams_like_one_shot(pad_mode: str, kernel: int, stride: int) -> None:
    torch.manual_seed(1)
    conv = CausalConv1d(3, 5, kernel, stride, pad_mode=pad_mode, weight_norm=True)  # type: ignore[arg-type]
    x = torch.randn(2, 3, 48)
    full = conv(x)
    state = conv.init_state(2)
    rng = np.random.default_rng(0)
    out, pos = [], 0
    first = 8  # reflect padding needs a first chunk longer than the padding
    for n in [first, *chunks((48 - first) // stride, rng, 5)]:
        n = n if pos == 0 else n * stride
        out.append(conv(x[..., pos : pos + n], state))
        pos += n
    torch.testing.assert_close(torch.cat(out, -1), full)


@pytest.mark.parametrize("bias", [True, False])
def test_causal_conv_streams_like_one_shot_on_both_cpu_paths(bias: bool) -> None:
    """A chunk of few frames is one matrix product on a CPU, a longer one torch's conv: both give
    the one-shot output, for one stream and for several."""
    torch.manual_seed(3)
    conv = CausalConv1d(6, 4, 4, 2, bias=bias)
    x = torch.randn(3, 6, 2 * (PRODUCT_MAX_ROWS + 8))
    full = conv(x)  # [3, 4, T / 2]
    state = conv.init_state(3)
    small, large = 8, 2 * PRODUCT_MAX_ROWS  # 3 x 4 output frames: a product; 3 x 64: torch's conv
    out = torch.cat([conv(x[..., :small], state), conv(x[..., small : small + large], state), conv(x[..., small + large :], state)], -1)
    torch.testing.assert_close(out, full)
    one = conv.init_state(1)
    torch.testing.assert_close(torch.cat([conv(x[:1, :, i : i + 2], one) for i in range(0, x.shape[-1], 2)], -1), full[:1])


def test_causal_conv_transpose_streams_like_one_shot_and_is_causal() -> None:
    torch.manual_seed(2)
    up = CausalConvTranspose1d(4, 3, 4, 2)
    x = torch.randn(2, 4, 20, requires_grad=True)
    full = up(x)  # [2, 3, 40]
    assert full.shape == (2, 3, 40)
    state = up.init_state(2)
    out = torch.cat([up(x[..., i : i + n], state) for i, n in [(0, 3), (3, 1), (4, 9), (13, 7)]], -1)
    torch.testing.assert_close(out, full)
    full[..., 9].sum().backward()  # output sample 9 belongs to input frame 4
    assert x.grad is not None and x.grad[..., 5:].abs().sum() == 0 and x.grad[..., 4].abs().sum() > 0


def test_stream_state_reset_restarts_replicate_padding() -> None:
    conv = CausalConv1d(2, 2, 3, pad_mode="replicate")
    x = torch.randn(1, 2, 6)
    state = conv.init_state(1)
    a = conv(x, state)
    state.reset()
    torch.testing.assert_close(conv(x, state), a)


# --------------------------------------------------------------------------- quantizers


def test_fsq_round_trip_and_code_range(model: CodecModel) -> None:
    q = model.quantizer
    latent = torch.randn(2, 7, tiny_args().latent_dim) * 3
    codes = q.encode(latent)
    assert codes.dtype == torch.int64 and codes.shape == (2, 7, 5)
    assert int(codes[..., 1:].min()) >= 0 and int(codes[..., 1:].max()) < 5
    out = q(latent)  # no dropout: everything quantized
    torch.testing.assert_close(q.decode(codes), out.latent)  # codes -> values == the quantized latent
    torch.testing.assert_close(q.encode(q.decode(codes)), codes, rtol=0, atol=0)  # values -> the same codes
    assert torch.equal(out.codes, codes)


def test_vq_round_trip_and_nearest_code(model: CodecModel) -> None:
    q = model.quantizer
    table = q.codebook()
    codes = torch.randint(0, 64, (3, 5))
    latent = torch.cat([table[codes], torch.zeros(3, 5, 4)], -1)  # exactly on codebook entries
    assert torch.equal(q.encode(latent)[..., 0], codes)
    noisy = latent + 0.01 * torch.randn_like(latent)
    dist = torch.cdist(noisy[..., :16].reshape(-1, 16), table)  # [15, 64]
    assert torch.equal(q.encode(noisy)[..., 0].reshape(-1), dist.argmin(-1))


def test_quantizer_dropout_modes() -> None:
    torch.manual_seed(3)
    q = CodecQuantizer(tiny_args()).train()
    latent = torch.randn(4, 6, 20)
    vq_on = torch.tensor([True, False, True, False])
    mode = torch.tensor([0, 0, FSQ_DITHERED, FSQ_BYPASSED])
    out = q(latent, vq_on, mode)
    torch.testing.assert_close(out.latent[1, :, :16], latent[1, :, :16])  # VQ bypassed: semantic passes through
    torch.testing.assert_close(out.latent[3, :, 16:], latent[3, :, 16:])  # FSQ bypassed
    step = 2.0 / 4
    assert (out.latent[2, :, 16:] - torch.tanh(latent[2, :, 16:])).abs().max() <= step / 2 + 1e-6  # dither within half a step
    levels = out.latent[0, :, 16:] / step
    torch.testing.assert_close(levels, levels.round())  # quantized to the grid
    vq_on, mode = draw_dropout(4000, torch.Generator().manual_seed(0))
    assert abs(vq_on.float().mean().item() - 0.5) < 0.03
    assert abs((mode == 0).float().mean().item() - 0.5) < 0.03 and abs((mode == 2).float().mean().item() - 0.25) < 0.03


def test_codebook_usage() -> None:
    uniform = codebook_usage(torch.arange(64).repeat(3), 64)
    assert uniform.perplexity == pytest.approx(64) and uniform.dead == 0 and uniform.used == 64
    one = codebook_usage(torch.full((100,), 7), 64)
    assert one.perplexity == pytest.approx(1) and one.dead == 63
    mixed = torch.tensor([[3, 3, 5, 9], [9, 9, 1, 3]])
    assert float(batch_perplexity(mixed, 16)) == pytest.approx(codebook_usage(mixed, 16).perplexity, rel=1e-6)
    assert float(batch_perplexity(torch.arange(64).repeat(3), 64)) == pytest.approx(64, rel=1e-5)


# --------------------------------------------------------------------------- the codec


def test_bitrate_37_tokens_per_80_ms() -> None:
    full = CodecArgs()
    assert full.num_codebooks == 37 and full.samples_per_frame == FRAME and full.frame_rate == 12.5
    assert full.encoder_windows() == [16, 8, 4, 2] and full.decoder_windows() == [2, 4, 8, 16]
    assert full.bitrate_bps == pytest.approx(12.5 * (13 + 36 * np.log2(21)))  # ~2.14 kbps
    codec = Codec(CodecModel(tiny_args(acoustic_dim=36)))
    codes = codec.encode(np.zeros(24000, dtype=np.float32), 24000)  # 1 s -> 12.5 frames, padded to 13
    assert codes.shape == (13, 37) and codes.dtype == torch.int64


def test_streaming_equals_one_shot(model: CodecModel) -> None:
    torch.manual_seed(4)
    wave = torch.randn(2, 9 * FRAME) * 0.3
    codes = model.encode(wave)
    state = model.init_state(2)
    rng = np.random.default_rng(1)
    got, pos = [], 0
    for n in chunks(9, rng, 3):
        got.append(model.encode(wave[:, pos * FRAME : (pos + n) * FRAME], state))
        pos += n
    assert torch.equal(torch.cat(got, 1), codes)  # bit-exact codes
    assert codes[..., 0].unique().numel() > 1  # the test would be weak on constant codes
    audio = model.decode(codes)
    state = model.init_state(2)
    streamed = torch.cat([model.decode(codes[:, i : i + 1], state) for i in range(9)], 1)
    torch.testing.assert_close(streamed, audio, rtol=1e-4, atol=1e-5)


def test_codec_stream_any_chunk_sizes(model: CodecModel) -> None:
    codec = Codec(model)
    wave = (np.random.default_rng(5).standard_normal(6 * FRAME) * 0.3).astype(np.float32)
    one_shot = codec.encode(wave, 24000)
    stream = codec.stream()
    rng = np.random.default_rng(6)
    got, pos = [], 0
    for n in chunks(len(wave), rng, 3000):
        got.append(stream.encode(wave[pos : pos + n]))
        pos += n
    assert torch.equal(torch.cat(got), one_shot)
    audio = codec.decode(one_shot)
    dec = codec.stream()
    streamed = np.concatenate([dec.decode(one_shot[i : i + 2]) for i in range(0, 6, 2)])
    np.testing.assert_allclose(streamed, audio, rtol=1e-4, atol=1e-5)


def test_finish_gives_the_last_partial_frame_like_one_shot(model: CodecModel) -> None:
    codec = Codec(model)
    wave = (np.random.default_rng(8).standard_normal(3 * FRAME + 700) * 0.3).astype(np.float32)
    stream = codec.stream()
    codes = torch.cat([stream.encode(wave[:5000]), stream.encode(wave[5000:]), stream.finish()])
    assert codes.shape[0] == 4 and torch.equal(codes, codec.encode(wave, 24000))


@pytest.mark.parametrize("rate", [16000, 44100])
def test_stream_at_another_rate_keeps_time_and_codes(model: CodecModel, rate: int) -> None:
    """One resampler for the stream: chunks resampled alone gained samples at every edge (+31 per
    second at 44.1 kHz in 512-sample chunks) and most codes differed from the one-shot ones."""
    codec = Codec(model)
    seconds = 2.0
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)  # [n] a moving tone
    one_shot = codec.encode(wave, rate)
    resampled = codec.load(wave, rate)
    for most in (512, 1001):
        stream = codec.stream(sample_rate=rate)
        got, pos = [], 0
        for n in chunks(len(wave), np.random.default_rng(most), most):
            got.append(stream.encode(wave[pos : pos + n]))
            pos += n
        got.append(stream.finish())
        codes = torch.cat(got)
        # the stream resamples block by block with overlap: equal to whole-signal resampling up
        # to the sinc filter's tails (~1e-7), too little to move this signal's codes (on 20 s
        # of it, too, at both rates and chunkings: no frame differs)
        assert torch.equal(codes, one_shot)
    assert resampled.shape[0] == int(seconds * 24000)


def test_two_streams_of_one_model_do_not_interfere(model: CodecModel) -> None:
    codec = Codec(model)
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal(4 * FRAME).astype(np.float32) * 0.3 for _ in range(2))
    sa, sb = codec.stream(), codec.stream()
    out_a, out_b = [], []
    for i in range(4):
        out_a.append(sa.encode(a[i * FRAME : (i + 1) * FRAME]))
        out_b.append(sb.encode(b[i * FRAME : (i + 1) * FRAME]))
    assert torch.equal(torch.cat(out_a), codec.encode(a, 24000))
    assert torch.equal(torch.cat(out_b), codec.encode(b, 24000))


def test_causality_future_audio_never_changes_past_codes(model: CodecModel) -> None:
    torch.manual_seed(8)
    wave = torch.randn(1, 8 * FRAME) * 0.3
    changed = wave.clone()
    changed[:, 5 * FRAME :] = torch.randn(1, 3 * FRAME)
    assert torch.equal(model.encode(wave)[:, :5], model.encode(changed)[:, :5])
    # by gradients: the latent of frame 4 does not depend on any later sample
    x = wave.clone().requires_grad_(True)
    model.encode_latent(x)[0, 4].sum().backward()
    assert x.grad is not None and x.grad[0, 5 * FRAME :].abs().sum() == 0 and x.grad[0, 4 * FRAME :].abs().sum() > 0
    # and the decoder: samples of frame 3 do not depend on later codes' latents
    latent = model.quantizer.decode(model.encode(wave)).requires_grad_(True)
    model.decode_latent(latent)[0, 3 * FRAME : 4 * FRAME].sum().backward()
    assert latent.grad is not None and latent.grad[0, 4:].abs().sum() == 0 and latent.grad[0, 3].abs().sum() > 0


def test_training_pass_reconstructs_shape_and_trains_the_encoder() -> None:
    torch.manual_seed(9)
    m = CodecModel(tiny_args()).train()
    wave = torch.randn(2, 3 * FRAME) * 0.3
    vq_on, mode = draw_dropout(2, torch.Generator().manual_seed(1))
    recon, q = m(wave, vq_on, mode)
    assert recon.shape == wave.shape and q.codes.shape == (2, 3, 5)
    ((recon - wave) ** 2).mean().add(q.commit_loss).backward()
    assert m.input_proj.conv.parametrizations.weight.original1.grad.abs().sum() > 0  # gradients pass the quantizers


def test_save_load_round_trip(tmp_path, model: CodecModel) -> None:  # noqa: ANN001
    save_codec(model, tmp_path / "c", dtype=torch.float16)
    loaded = load_codec(tmp_path / "c")
    wave = torch.randn(1, 3 * FRAME) * 0.3
    assert loaded.quantizer.codebook().dtype == torch.float32
    torch.testing.assert_close(loaded.quantizer.codebook(), model.quantizer.codebook())
    a, b = model.decode(model.encode(wave)), loaded.decode(model.encode(wave))
    torch.testing.assert_close(a, b, rtol=0.05, atol=5e-3)  # float16 layers


def test_bad_codes_are_refused(model: CodecModel) -> None:
    codec = Codec(model)
    with pytest.raises(VoxkitError, match="integer tensor"):
        codec.decode(torch.zeros(3, 4))
    with pytest.raises(VoxkitError, match="acoustic codes"):
        codec.decode(torch.full((2, 5), 5))


def test_zero_frames_and_bad_lengths(model: CodecModel) -> None:
    codec = Codec(model)
    codes = codec.encode(np.zeros(FRAME, np.float32), 24000)
    assert codec.decode(codes[:0]).shape == (0,)  # an empty codes file decodes to no audio
    with pytest.raises(VoxkitError, match="num_samples"):
        codec.decode(codes, num_samples=-5)


def test_bad_inputs_are_refused_with_what_to_do(model: CodecModel) -> None:
    with pytest.raises(TypeError, match=r"Codec.from_pretrained\('some/folder'\)"):
        Codec("some/folder")  # type: ignore[arg-type]
    codec = Codec(model)
    with pytest.raises(VoxkitError, match="needs its sample_rate"):
        codec.encode(np.zeros(2400, np.float32))
    with pytest.raises(VoxkitError, match="not kHz"):
        codec.encode(np.zeros(2400, np.float32), sample_rate=24)
    with pytest.raises(VoxkitError, match="not kHz"):
        codec.stream(sample_rate=16)
    with pytest.raises(VoxkitError, match="got NoneType"):
        codec.encode(None)  # type: ignore[arg-type]


def test_a_codec_held_in_bfloat16_encodes(tmp_path, model: CodecModel) -> None:  # noqa: ANN001
    """load_codec offers 16-bit layers: float32 audio must meet them (the encoder used to refuse)."""
    save_codec(model, tmp_path / "c")
    codec = Codec(load_codec(tmp_path / "c", dtype=torch.bfloat16))
    wave = (np.random.default_rng(9).standard_normal(3 * FRAME) * 0.3).astype(np.float32)
    codes = codec.encode(wave, 24000)
    assert codes.shape == (3, model.args.num_codebooks)
    stream = codec.stream()
    assert torch.equal(torch.cat([stream.encode(wave), stream.finish()]), codes)
