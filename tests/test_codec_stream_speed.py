"""The codec's fast streaming paths give what the plain ones give.

Several frames per call (rings sized for a pass of frames), weight norm folded at load, the cached
codebook norms and the streaming transposed conv's product + overlap-add: each must leave the
codes bit-exact and the audio equal to float rounding. Speed itself is measured by
scripts/bench_codec.py, not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from tests.test_codec_model import FRAME, tiny_args, tiny_codec
from voxkit.codec import Codec
from voxkit.codec.checkpoint import load_codec, save_codec
from voxkit.codec.model import CodecModel
from voxkit.codec.quantizer import CodecQuantizer
from voxkit.conv import CausalConvTranspose1d, fold_weight_norm
from voxkit.lm import Transformer


@pytest.fixture(scope="module")
def model() -> CodecModel:
    return tiny_codec()


def _wave(frames: int, seed: int) -> torch.Tensor:
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(frames * FRAME) * 0.3).astype(np.float32))  # [N]


# --------------------------------------------------------------------------- several frames per call


def test_a_pass_of_frames_meets_each_stage_in_one_piece(model: CodecModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rings hold the window plus a pass's steps: a running stream's pass of ``frames`` is one
    step of every transformer stage (not one per frame), and a longer chunk one step per pass."""
    stages = sum(isinstance(b, Transformer) for b in [*model.encoder_blocks, *model.decoder_blocks])
    state = model.init_state(1, frames=4)
    wave = _wave(24, 7)[None]  # [1, 24 * 1920]
    codes = model.encode(wave[:, : 12 * FRAME], state)  # every ring has wrapped by now
    model.decode(codes, state)
    calls: list[int] = []
    step = Transformer._forward_step

    def counted(self: Transformer, x: torch.Tensor, *args: object) -> torch.Tensor:
        calls.append(x.shape[1])
        return step(self, x, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Transformer, "_forward_step", counted)
    model.decode(model.encode(wave[:, 12 * FRAME : 16 * FRAME], state), state)
    assert len(calls) == stages
    calls.clear()
    model.decode(model.encode(wave[:, 16 * FRAME :], state), state)  # 8 frames: two passes
    assert len(calls) == 2 * stages
    with pytest.raises(ValueError, match="frames must be >= 1"):
        model.init_state(1, frames=0)


@pytest.mark.parametrize("frames", [4, 16])
def test_many_frames_per_call_give_the_frame_by_frame_codes_and_audio(model: CodecModel, frames: int) -> None:
    """One call of 11 or 40 frames (in passes of ``frames``) == 40 calls of one frame: codes bit-exact."""
    wave = _wave(40, 1)[None]  # [1, 40 * 1920]
    single = model.init_state(1, frames=1)
    by_frame = torch.cat([model.encode(wave[:, i * FRAME : (i + 1) * FRAME], single) for i in range(40)], 1)  # [1, 40, 5]
    state = model.init_state(1, frames=frames)
    at_once = torch.cat([model.encode(wave[:, : 11 * FRAME], state), model.encode(wave[:, 11 * FRAME :], state)], 1)
    assert torch.equal(at_once, by_frame)
    assert torch.equal(at_once, model.encode(wave))  # and the one-shot codes
    assert by_frame[..., 0].unique().numel() > 1  # the test would be weak on constant codes
    single = model.init_state(1, frames=1)
    audio_by_frame = torch.cat([model.decode(by_frame[:, i : i + 1], single) for i in range(40)], 1)  # [1, 40 * 1920]
    state = model.init_state(1, frames=frames)
    audio = torch.cat([model.decode(by_frame[:, :11], state), model.decode(by_frame[:, 11:], state)], 1)
    torch.testing.assert_close(audio, audio_by_frame, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(audio, model.decode(by_frame), rtol=1e-4, atol=1e-5)


def test_a_bad_length_is_refused_before_a_pass_moves_the_stream(model: CodecModel) -> None:
    state = model.init_state(1, frames=2)
    with pytest.raises(ValueError, match="whole 80 ms frames"):
        model.encode(torch.zeros(1, 5 * FRAME + 7), state)
    assert all(int(s.offset.max()) == 0 for s in state.blocks if hasattr(s, "offset"))  # no ring was written


def test_stream_chunks_of_seconds_give_the_one_shot_codes(model: CodecModel) -> None:
    """Chunks of 1 s (12.5 frames: a frame completed across chunks) and 2.5 s (more than a pass)."""
    codec = Codec(model)
    wave = _wave(70, 2).numpy()
    one_shot = codec.encode(wave, 24000)
    for chunk in (24000, 60000, 1920, 1000):
        stream = codec.stream()
        codes = torch.cat([stream.encode(wave[i : i + chunk]) for i in range(0, len(wave), chunk)] + [stream.finish()])
        assert torch.equal(codes, one_shot), chunk
    audio = codec.decode(one_shot)
    for frames in (1, 12, 25):
        stream = codec.stream()
        streamed = np.concatenate([stream.decode(one_shot[i : i + frames]) for i in range(0, 70, frames)])
        np.testing.assert_allclose(streamed, audio, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- weight norm folded at load


def test_a_loaded_codec_folds_weight_norm_and_keeps_its_outputs(tmp_path, model: CodecModel) -> None:  # noqa: ANN001
    save_codec(model, tmp_path / "c")
    plain = load_codec(tmp_path / "c")  # as training and export load it: the parametrization in place
    assert any("parametrizations.weight.original0" in k for k in plain.state_dict())
    codec = Codec.from_pretrained(tmp_path / "c")
    assert not any(parametrize.is_parametrized(m, "weight") for m in codec.model.modules())
    assert fold_weight_norm(codec.model) == 0  # nothing left to fold
    wave = _wave(5, 3)[None]
    codes = plain.encode(wave)
    assert torch.equal(codec.model.encode(wave), codes)
    torch.testing.assert_close(codec.model.decode(codes), plain.decode(codes), rtol=1e-6, atol=1e-7)
    # streamed too: the folded weights serve the streaming calls
    state = codec.model.init_state(1)
    assert torch.equal(torch.cat([codec.model.encode(wave[:, i * FRAME : (i + 1) * FRAME], state) for i in range(5)], 1), codes)


def test_a_folded_codec_saves_the_published_weight_norm_keys(tmp_path, model: CodecModel) -> None:  # noqa: ANN001
    save_codec(model, tmp_path / "a")
    folded = Codec.from_pretrained(tmp_path / "a").model
    save_codec(folded, tmp_path / "b")
    again = load_codec(tmp_path / "b")
    assert sorted(again.state_dict()) == sorted(model.state_dict())
    wave = _wave(3, 4)[None]
    codes = model.encode(wave)
    assert torch.equal(again.encode(wave), codes)
    torch.testing.assert_close(again.decode(codes), model.decode(codes), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- cached codebook norms


def _nearest(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nearest code of each row of x [N, D] by full squared distance [N]."""
    return torch.cdist(x, table).argmin(-1)


def test_codebook_norm_cache_follows_every_change_of_the_table() -> None:
    torch.manual_seed(5)
    q = CodecQuantizer(tiny_args()).eval()
    embed = q.semantic._codebook.embed  # [1, 64, 16]
    with torch.no_grad():
        embed.copy_(torch.randn_like(embed))
    latent = torch.randn(1, 50, 20)  # [1, 50, 292-like]: 16 semantic + 4 acoustic channels
    semantic = latent[0, :, :16]

    def check() -> None:
        assert torch.equal(q.encode(latent)[0, :, 0], _nearest(q.codebook(), semantic))

    check()
    with torch.no_grad():  # an in-place write (bumps the version counter)
        embed.mul_(-1.0)
    check()
    q.load_state_dict({k: (torch.randn_like(v) if k.endswith("embed") else v) for k, v in q.state_dict().items()})
    check()
    # training's EMA writes through .data, which no version counter sees: train() drops the cache
    q.train()
    embed.data.copy_(torch.randn_like(embed))
    q.eval()
    check()
    with torch.inference_mode():  # a cache made in inference mode serves outside it, and back
        check()
    check()


def test_codebook_norms_are_not_cached_while_training() -> None:
    q = CodecQuantizer(tiny_args()).train()
    q.encode(torch.randn(1, 3, 20))
    assert q._norms is None


# --------------------------------------------------------------------------- streaming transposed conv


@pytest.mark.parametrize("kernel,stride", [(4, 2), (6, 2), (3, 1), (2, 2), (5, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_transposed_conv_streams_like_torch(kernel: int, stride: int, bias: bool) -> None:
    """Product + overlap-add (kernel a multiple of stride) or torch's own (5, 2): the one-shot signal."""
    torch.manual_seed(6)
    up = CausalConvTranspose1d(6, 5, kernel, stride, weight_norm=True, bias=bias)
    x = torch.randn(2, 6, 23)
    with torch.no_grad():
        full = up(x)  # [2, 5, 23 * stride] torch's ConvTranspose1d, trimmed
        state = up.init_state(2)
        out = torch.cat([up(x[..., i : i + n], state) for i, n in [(0, 1), (1, 5), (6, 16), (22, 1)]], -1)
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)
