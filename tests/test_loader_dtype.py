"""The ``dtype`` of ``Codec.from_pretrained`` and ``Speaker.from_pretrained``, read as ``voxkit.Transcriber`` reads it.

The agreement bounds of the 16-bit codes come from measurement (docs/codec.md, "Use"): a random
codec codes nothing like a trained one (its latent sits near zero, so every acoustic code is the
middle level and the agreement would be trivially whole), so the codec here has its latent scaled
to spread over the FSQ levels and its semantic codebook drawn to cover the latents, as training
leaves them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tts_helpers import CODEC, tiny_tts_folder
from voxkit.audio.io import load_input
from voxkit.codec.api import Codec
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import load_codec, save_codec
from voxkit.codec.model import CodecModel
from voxkit.conv import fold_weight_norm
from voxkit.errors import VoxkitError
from voxkit.tts.api import Speaker

SAMPLES = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "samples"
RATE = 24000


def _frames(wave: torch.Tensor) -> torch.Tensor:
    """[N] -> [1, whole frames] padded with silence."""
    n = -(-wave.shape[0] // 1920) * 1920
    out = torch.zeros(1, n)
    out[0, : wave.shape[0]] = wave
    return out


def coding_codec(seed: int = 0) -> CodecModel:
    """A tiny random codec whose codes spread over the codebooks (see the module docstring)."""
    torch.manual_seed(seed)
    model = CodecModel(CodecArgs(**CODEC)).eval()  # type: ignore[arg-type]
    fold_weight_norm(model)
    quantizer = model.quantizer
    calibration = _frames(torch.cat([load_input(SAMPLES / f"{lang}.flac", None, RATE, "test") for lang in ("de", "fr", "es")]))
    with torch.no_grad():
        latent = model.encode_latent(calibration)[0]  # [T, latent]
        model.encoder_blocks[-1].conv.weight /= latent[:, quantizer.semantic_dim :].std()  # acoustic latent of unit spread
        semantic = model.encode_latent(calibration)[0, :, : quantizer.semantic_dim]  # [T, S]
        noise = torch.randn(quantizer.codebook_size, quantizer.semantic_dim, generator=torch.Generator().manual_seed(seed))
        table = semantic.mean(0) + semantic.std(0) * noise  # [K, S] codes where the latents are
        book = quantizer.semantic._codebook
        book.embed.copy_(table[None])
        book.embed_avg.copy_(table[None])
        book.cluster_size.fill_(1.0)
    return model


@pytest.fixture(scope="module")
def coding_model() -> CodecModel:
    return coding_codec()


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory: pytest.TempPathFactory, coding_model: CodecModel) -> Path:
    return save_codec(coding_model, tmp_path_factory.mktemp("codec"))


@pytest.fixture(scope="module")
def codec16_dir(tmp_path_factory: pytest.TempPathFactory, coding_model: CodecModel) -> Path:
    """The same codec, its layers stored in float16 (as ``voxkit export codec`` writes them by default)."""
    return save_codec(coding_model, tmp_path_factory.mktemp("codec16"), dtype=torch.float16)


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    """8 s of synthetic speech at 24 kHz, unseen by the codec's calibration."""
    return load_input(SAMPLES / "en.flac", None, RATE, "test")


def layer_dtypes(model: CodecModel) -> set[torch.dtype]:
    return {p.dtype for name, p in model.named_parameters() if not name.startswith("quantizer.")}


def quantizer_dtypes(model: CodecModel) -> set[torch.dtype]:
    return {t.dtype for t in model.quantizer.state_dict().values() if t.is_floating_point()}


# ----------------------------------------------------------------------------- codec


@pytest.mark.parametrize(("dtype", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16),
                                                 (torch.float16, torch.float16)])
def test_codec_dtype_casts_the_layers_and_keeps_the_quantizer_float32(codec_dir: Path, dtype: object,
                                                                       expected: torch.dtype) -> None:
    codec = Codec.from_pretrained(codec_dir, dtype=dtype)  # type: ignore[arg-type]
    assert layer_dtypes(codec.model) == {expected}
    assert quantizer_dtypes(codec.model) == {torch.float32}
    assert codec.codebook_fingerprint == Codec.from_pretrained(codec_dir).codebook_fingerprint  # codes files pass between them


def test_codec_default_is_float32_even_for_a_16_bit_folder_and_auto_keeps_what_is_stored(codec_dir: Path, codec16_dir: Path) -> None:
    assert layer_dtypes(Codec.from_pretrained(codec16_dir).model) == {torch.float32}  # widened, as Transcriber widens one
    for auto in ("auto", None):
        assert layer_dtypes(Codec.from_pretrained(codec16_dir, dtype=auto).model) == {torch.float16}
        assert layer_dtypes(Codec.from_pretrained(codec_dir, dtype=auto).model) == {torch.float32}
    assert quantizer_dtypes(Codec.from_pretrained(codec16_dir, dtype="auto").model) == {torch.float32}


def test_codec_bfloat16_codes_agree_with_float32(codec_dir: Path, speech: torch.Tensor) -> None:
    full = Codec.from_pretrained(codec_dir)
    half = Codec.from_pretrained(codec_dir, dtype="bfloat16")
    reference, codes = full.encode(speech, RATE), half.encode(speech, RATE)  # [T, 5] each
    assert codes.dtype == torch.int64 and codes.shape == reference.shape
    # the codes are not trivially equal: the codec uses much of both codebooks
    assert reference[:, 0].unique().numel() >= 16 and reference[:, 1:].unique().numel() == CODEC["acoustic_codebook_size"]
    # measured over 12 seeds: semantic 0.975-1.0, acoustic 0.981-0.997, never more than one level off
    assert (codes[:, 0] == reference[:, 0]).float().mean() >= 0.95
    assert (codes[:, 1:] == reference[:, 1:]).float().mean() >= 0.95
    assert (codes[:, 1:] - reference[:, 1:]).abs().max() <= 1
    # decoding the same codes: float32 numpy out, within rounding of the float32 decoder (measured 0.8% rms)
    wave, wave_full = half.decode(reference), full.decode(reference)
    assert isinstance(wave, np.ndarray) and wave.dtype == np.float32 and wave.shape == wave_full.shape
    assert np.sqrt(np.mean((wave - wave_full) ** 2)) <= 0.02 * np.sqrt(np.mean(wave_full**2))
    audio, rate = half.roundtrip(speech[:RATE].numpy(), RATE)
    assert audio.dtype == np.float32 and rate == RATE and audio.shape == (RATE,)


def test_a_bfloat16_codec_streams_its_own_one_shot_codes_in_float32_out(codec_dir: Path, speech: torch.Tensor) -> None:
    half = Codec.from_pretrained(codec_dir, dtype="bfloat16")
    clip = speech[: 2 * RATE]
    stream = half.stream()
    codes = torch.cat([stream.encode(clip[i : i + 4001].numpy()) for i in range(0, clip.shape[0], 4001)] + [stream.finish()])
    assert torch.equal(codes, half.encode(clip, RATE))
    chunk = half.stream().decode(codes[:3])
    assert chunk.dtype == np.float32 and chunk.shape == (3 * 1920,) and np.isfinite(chunk).all()


# ----------------------------------------------------------------------------- speaker


@pytest.fixture(scope="module")
def tts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts"))


@pytest.fixture(scope="module")
def tts16_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny TTS folder with its model and codec stored in bfloat16."""
    folder = tiny_tts_folder(tmp_path_factory.mktemp("tts16"))
    weights = folder / "consolidated.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        meta = fh.metadata()
        state = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}, str(weights), metadata=meta)
    save_codec(load_codec(folder / "codec"), folder / "codec", dtype=torch.bfloat16)
    assert json.loads((folder / "params.json").read_text())["tokenizer"] == "byte"
    return folder


@pytest.fixture(scope="module")
def speaker16(tts_dir: Path) -> Speaker:
    return Speaker.from_pretrained(tts_dir, dtype="bfloat16")


def speaker_dtypes(speaker: Speaker) -> tuple[set[torch.dtype], set[torch.dtype], set[torch.dtype]]:
    """(the TTS model's weights', the codec layers', the codec quantizer's) floating dtypes; the
    rotary tables the backbone computes from positions stay float32, as lm keeps them."""
    model = {p.dtype for p in speaker.model.parameters()}
    return model, layer_dtypes(speaker.codec.model), quantizer_dtypes(speaker.codec.model)  # type: ignore[attr-defined]


def test_speaker_dtype_reaches_the_model_and_its_codec(speaker16: Speaker, tts_dir: Path) -> None:
    assert speaker_dtypes(speaker16) == ({torch.bfloat16}, {torch.bfloat16}, {torch.float32})
    assert speaker_dtypes(Speaker.from_pretrained(tts_dir)) == ({torch.float32}, {torch.float32}, {torch.float32})


def test_a_bfloat16_speaker_speaks_float32_on_a_cpu(speaker16: Speaker, speech: torch.Tensor) -> None:
    voice = speaker16.prepare_voice(speech[: int(1.5 * RATE)].numpy(), RATE)  # the reference through the bfloat16 encoder
    assert voice.codes.dtype == torch.int64 and voice.codes.shape[1] == 1 + CODEC["acoustic_dim"]
    stream = speaker16.stream("Hi.", voice=voice, seed=1)
    chunks = list(itertools.islice(stream, 3))  # the first frames: generation and decoding run in bfloat16
    stream.close()
    assert chunks and all(c.dtype == np.float32 and c.size > 0 and np.isfinite(c).all() for c in chunks)
    assert speaker16.sample_rate == RATE


def test_speaker_default_widens_a_16_bit_folder_and_auto_keeps_it(tts16_dir: Path) -> None:
    assert speaker_dtypes(Speaker.from_pretrained(tts16_dir)) == ({torch.float32}, {torch.float32}, {torch.float32})
    assert speaker_dtypes(Speaker.from_pretrained(tts16_dir, dtype="auto")) == ({torch.bfloat16}, {torch.bfloat16}, {torch.float32})


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("dtype", ["int8", "fp16", "half", torch.int64, 16, "float64"])
def test_a_bad_dtype_is_refused_in_one_line_before_anything_loads(tmp_path: Path, dtype: object) -> None:
    missing = tmp_path / "no-such-folder"  # the option is checked where it enters, before the folder is read
    for load in (Codec.from_pretrained, Speaker.from_pretrained):
        with pytest.raises(VoxkitError, match=r"^dtype must be a floating torch dtype .*'bfloat16'.*'auto'") as err:
            load(missing, dtype=dtype)  # type: ignore[operator]
        assert "\n" not in str(err.value)
