"""One-shot ``Codec.encode`` / ``decode`` on long audio: memory that does not grow with the length,
and the codes and audio of one whole pass.

The model's whole-sequence pass builds each stage's ALiBi bias over all pairs of its steps
([1, H, T, T]), so ten minutes asked for 28.8 GB; the public one-shot calls run long inputs through
a streaming state in passes of ``ONE_PASS_FRAMES`` frames instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_codec_model import FRAME, tiny_codec
from voxkit.codec import Codec
from voxkit.codec.api import ONE_PASS_FRAMES
from voxkit.codec.model import CodecModel
from voxkit.lm.positions import ALiBi


@pytest.fixture(scope="module")
def model() -> CodecModel:
    return tiny_codec()


def speechlike(samples: int, seed: int = 0) -> np.ndarray:
    """[samples] float32 at 24 kHz: a moving tone with a little noise (codes that change from frame to frame)."""
    t = np.arange(samples) / 24000
    noise = np.random.default_rng(seed).standard_normal(samples)
    return (0.3 * np.sin(2 * np.pi * 170 * t) * (1 + np.sin(2 * np.pi * 2.3 * t)) + 0.05 * noise).astype(np.float32)


def largest_bias(monkeypatch: pytest.MonkeyPatch, call: object) -> int:
    """The most elements any ALiBi bias of ``call()`` held: what grows with the square of a pass's length."""
    seen = [0]
    forward = ALiBi.forward

    def recording(self: ALiBi, *args: object, **kwargs: object) -> torch.Tensor:
        bias = forward(self, *args, **kwargs)  # type: ignore[arg-type]
        seen[0] = max(seen[0], bias.numel())
        return bias

    with monkeypatch.context() as m:
        m.setattr(ALiBi, "forward", recording)
        call()  # type: ignore[operator]
    return seen[0]


def test_one_shot_memory_does_not_grow_with_the_length(model: CodecModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the bias of 20 s was 6.25 times that of 8 s (and ten minutes asked for 28.8 GB)."""
    codec = Codec(model)
    short, long = speechlike(100 * FRAME), speechlike(250 * FRAME)  # 8 s and 20 s: both longer than one pass
    codes = {}
    sizes = []
    for name, wave in (("short", short), ("long", long)):
        sizes.append(largest_bias(monkeypatch, lambda w=wave, n=name: codes.__setitem__(n, codec.encode(w, 24000))))
        sizes.append(largest_bias(monkeypatch, lambda n=name: codec.decode(codes[n])))
    steps = ONE_PASS_FRAMES * model.args.downsample  # the outermost stage's steps in one pass
    bound = model.args.n_heads * steps * (steps + 16)  # one pass's queries against its ring (window + pass), whatever the length
    assert max(sizes) <= bound, sizes


def test_long_one_shot_gives_the_whole_pass_codes_and_audio(model: CodecModel) -> None:
    """Passes of ONE_PASS_FRAMES give the codes of one whole pass bit for bit and its audio within float tolerance."""
    codec = Codec(model)
    n = (2 * ONE_PASS_FRAMES + 9) * FRAME + 777  # two whole passes and a short one, the last frame padded
    wave = speechlike(n, seed=3)
    codes = codec.encode(wave, 24000)
    padded = torch.zeros(1, codes.shape[0] * FRAME)  # [1, T * 1920]
    padded[0, :n] = torch.from_numpy(wave)
    whole = model.encode(padded)[0]  # [T, 37]: the model's whole-sequence pass
    assert torch.equal(codes, whole) and codes[:, 0].unique().numel() > 1
    audio = codec.decode(codes, num_samples=n)
    assert audio.shape == (n,) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, model.decode(whole[None])[0, :n].numpy(), rtol=1e-4, atol=1e-6)
    stream = codec.stream()
    assert torch.equal(torch.cat([stream.encode(wave), stream.finish()]), codes)  # the live API agrees


def test_a_short_input_is_still_one_whole_pass(model: CodecModel) -> None:
    codec = Codec(model)
    wave = speechlike(ONE_PASS_FRAMES * FRAME - 5, seed=4)  # just under one pass
    codes = codec.encode(wave, 24000)
    padded = torch.zeros(1, ONE_PASS_FRAMES * FRAME)
    padded[0, : wave.shape[0]] = torch.from_numpy(wave)
    assert torch.equal(codes, model.encode(padded)[0])
    np.testing.assert_array_equal(codec.decode(codes), model.decode(codes[None])[0].numpy())
