"""The TTS model's machinery on a tiny random model: flow matching, guidance, sampling, stopping, streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tts_helpers import tiny_tts_args, tiny_tts_folder
from voxkit.errors import VoxkitError
from voxkit.tts.api import FADE_S, Speaker
from voxkit.tts.args import TTSArgs
from voxkit.tts.checkpoint import load_tts, save_tts
from voxkit.tts.flow import FlowHead, acoustic_values, quantize_acoustic
from voxkit.tts.generate import GenerationOptions, generate_frames
from voxkit.tts.model import TTSModel


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts"))


@pytest.fixture(scope="module")
def speaker(folder: Path) -> Speaker:
    return Speaker.from_pretrained(folder)


def test_flow_matching_learns_a_toy_field() -> None:
    """Targets that are a fixed function of the condition: the loss falls and guided samples land near them."""
    torch.manual_seed(0)
    args = tiny_tts_args()
    head = FlowHead(args.flow, acoustic_dim=4, cond_dim=8)
    proj = torch.randn(8, 4)
    h = torch.randn(256, 8)  # [N, C]
    x1 = torch.tanh(h @ proj)  # [N, 4] the values each condition should produce
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        loss = head.loss(x1, h, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    sampled = head.sample(h[:64], torch.randn(64, 4, generator=gen), steps=16, cfg=1.0)  # [64, 4]
    noise_error = float((torch.randn(64, 4, generator=gen) - x1[:64]).abs().mean())
    assert float((sampled - x1[:64]).abs().mean()) < 0.5 * noise_error


def test_cfg_one_equals_the_conditional_branch() -> None:
    torch.manual_seed(1)
    head = FlowHead(tiny_tts_args().flow, acoustic_dim=4, cond_dim=8).eval()
    h, noise = torch.randn(3, 8), torch.randn(3, 4)
    fast = head.sample(h, noise, steps=5, cfg=1.0)
    # both branches in one batch, combined with a = 1 (what guidance computes at any strength)
    x = noise.clone()
    with torch.no_grad():
        for i in range(5):
            t = torch.full((6,), i / 5)
            v = head.velocity(torch.cat([x, x]), t, torch.cat([h, torch.zeros_like(h)]))
            x = x + (1.0 * v[:3] + 0.0 * v[3:]) / 5
    torch.testing.assert_close(fast, x, atol=1e-6, rtol=1e-5)
    guided = head.sample(h, noise, steps=5, cfg=2.0)
    assert not torch.allclose(guided, fast)


def test_fsq_values_round_trip() -> None:
    idx = torch.arange(21).repeat(2, 1)  # [2, 21]
    assert torch.equal(quantize_acoustic(acoustic_values(idx, 21), 21), idx)
    assert quantize_acoustic(torch.tensor([-5.0, 5.0]), 21).tolist() == [0, 20]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_flow_values_round_to_the_levels_of_their_float32_reading(dtype: torch.dtype) -> None:
    """A 16-bit flow's output is one value exactly: its level must be the one the codec's FSQ
    (which rounds in float32) gives that value, not one level off from 16-bit arithmetic."""
    values = torch.linspace(-1.0, 1.0, 200_001).to(dtype).unique()  # [n]: every representable value in [-1, 1]
    assert torch.equal(quantize_acoustic(values, 21), quantize_acoustic(values.float(), 21))


def test_frame_embedding_is_the_sum_of_37_lookups() -> None:
    torch.manual_seed(2)
    args = tiny_tts_args()
    model = TTSModel(args)
    codes = torch.tensor([[3, 0, 4, 2, 1], [args.end_audio_id, 6, 6, 6, 6]])  # [2, 5]
    table = model.frame_embeddings.weight
    offsets = [0] + [args.semantic_vocab + i * args.acoustic_vocab for i in range(args.acoustic_dim)]
    expected = torch.stack([sum(table[c + o] for c, o in zip(row.tolist(), offsets, strict=True)) for row in codes])
    torch.testing.assert_close(model.frame_embeddings(codes), expected)


class _EndAfter(nn.Module):
    """A semantic head that says code 5 for ``n`` frames, then [END_AUDIO]."""

    def __init__(self, n: int, vocab: int, end: int) -> None:
        super().__init__()
        self.n, self.vocab, self.end, self.calls = n, vocab, end, 0
        self.weight = nn.Parameter(torch.zeros(vocab, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = torch.full((hidden.shape[0], self.vocab), -1e4)
        logits[:, self.end if self.calls >= self.n else 5] = 1e4
        self.calls += 1
        return logits


def test_generation_stops_at_end_audio_and_at_max_frames() -> None:
    torch.manual_seed(3)
    model = TTSModel(tiny_tts_args()).eval()
    model.semantic_head = _EndAfter(4, model.args.semantic_vocab, model.args.end_audio_id)
    prompt = model.prompt([70, 71], None)
    frames = list(generate_frames(model, prompt, GenerationOptions(), torch.Generator().manual_seed(0)))
    assert len(frames) == 4 and all(int(f[0]) == 5 for f in frames)
    assert all(0 <= int(v) < model.args.acoustic_levels for f in frames for v in f[1:])
    model.semantic_head = _EndAfter(100, model.args.semantic_vocab, model.args.end_audio_id)
    frames = list(generate_frames(model, prompt, GenerationOptions(max_frames=7), torch.Generator().manual_seed(0)))
    assert len(frames) == 7


def test_empty_audio_is_never_sampled() -> None:
    torch.manual_seed(4)
    model = TTSModel(tiny_tts_args()).eval()
    with torch.no_grad():  # make [EMPTY_AUDIO] the head's favourite by far
        model.semantic_head.weight[model.args.empty_audio_id] = 50 * model.backbone.norm.weight
    frames = list(generate_frames(model, model.prompt([70], None), GenerationOptions(max_frames=5, temperature=0.0),
                                  torch.Generator().manual_seed(0)))
    assert all(int(f[0]) != model.args.empty_audio_id for f in frames)


def test_same_seed_same_speech_other_seed_other_speech(speaker: Speaker) -> None:
    a, sr = speaker.speak("Hello there.", voice="demo", seed=7)
    b, _ = speaker.speak("Hello there.", voice="demo", seed=7)
    c, _ = speaker.speak("Hello there.", voice="demo", seed=8)
    assert sr == 24000 and a.dtype == np.float32 and a.size > 0
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert speaker.last_seed == 8
    speaker.speak("Hello.", voice="demo")
    assert isinstance(speaker.last_seed, int)


def test_stream_equals_one_shot_decoding(speaker: Speaker) -> None:
    """Frame-by-frame codec decoding of the generated frames equals decoding them all at once."""
    chunks = list(speaker.stream("Just one sentence here.", voice="demo", seed=3))
    streamed = np.concatenate(chunks)
    assert len(chunks) > 1 and all(c.size == speaker.codec.samples_per_frame for c in chunks)
    voice = speaker.prepare_voice("demo")
    prompt = speaker.model.prompt(speaker.tokenizer.encode("Just one sentence here.", bos=False), voice.codes,
                                  speaker.tokenizer.encode(voice.text, bos=False))
    options = GenerationOptions(max_frames=25 + 3 * len("Just one sentence here."), min_frames=1)  # as Speaker runs it
    frames = torch.stack(list(generate_frames(speaker.model, prompt, options, torch.Generator().manual_seed(3))))  # [T, 37]
    whole = speaker.codec.decode(frames)  # [T * 1920]
    fade = np.linspace(0.0, 1.0, int(FADE_S * 24000), dtype=np.float32)
    whole[: fade.size] *= fade
    whole[-fade.size :] *= fade[::-1]
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_long_text_is_split_and_joined_with_pauses(speaker: Speaker) -> None:
    assert speaker.sentences("I have 3 cats. They sleep!") == ["I have three cats.", "They sleep!"]
    long = "word, " * 80 + "end."
    assert all(len(p) <= 250 for p in speaker.sentences(long)) and len(speaker.sentences(long)) >= 2
    audio, _ = speaker.speak("One. Two.", voice="demo", seed=1)
    # every sentence starts and ends faded: no sample jumps at the joins
    assert np.abs(np.diff(audio)).max() < 1.0


def test_speed_changes_duration(speaker: Speaker) -> None:
    normal, _ = speaker.speak("A sentence to stretch.", voice="demo", seed=2)
    fast, _ = speaker.speak("A sentence to stretch.", voice="demo", seed=2, speed=1.5)
    assert abs(fast.size * 1.5 / normal.size - 1) < 0.05


def test_reference_checks(speaker: Speaker, tmp_path: Path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    voice = speaker.prepare_voice(rng.normal(0, 0.1, 16000 * 5).astype(np.float32), 16000, reference_text="Hi there.")
    assert voice.codes.shape == (40, 5) and voice.text == "Hi there."  # 5 s trimmed to the tiny model's 40 frames
    assert voice.warnings and "first 3.2 s are used" in voice.warnings[0]
    short = speaker.prepare_voice(rng.normal(0, 0.1, 24000 * 2).astype(np.float32), 24000)
    assert short.warnings and "only 2.0 s" in short.warnings[0]
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(48000, dtype=np.float32), 24000)
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, rng.normal(0, 0.1, 7200).astype(np.float32), 24000)
    for bad, message in [(not_audio, "not readable as audio"), (silent, "silent"), (tiny, "0.3 s long"),
                         (tmp_path, "directory"), ("nobody", "neither an audio file nor a preset")]:
        with pytest.raises(VoxkitError, match=message):
            speaker.prepare_voice(bad)
    with pytest.raises(VoxkitError, match="needs its rate"):
        speaker.speak("Hi.", voice=np.zeros(100))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text": "  "}, "empty"), ({"language": "xx"}, "not supported"), ({"speed": 3.0}, "speed"), ({"steps": 0}, "steps"),
])
def test_bad_requests_give_messages(speaker: Speaker, kwargs: dict, message: str) -> None:
    call = {"text": "Hello.", "voice": "demo", **kwargs}
    with pytest.raises(VoxkitError, match=message):
        speaker.speak(call.pop("text"), **call)


def test_folder_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = TTSModel(tiny_tts_args()).eval()
    save_tts(model, tmp_path)
    loaded, codec = load_tts(tmp_path)
    assert codec == tmp_path / "codec"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert TTSArgs.from_params(model.args.to_params()) == model.args


def test_missing_bundled_model_or_codec_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import voxkit.tts.api as api

    monkeypatch.setattr(api, "BUNDLED", tmp_path / "nothing")
    with pytest.raises(VoxkitError, match="no bundled TTS model"):
        Speaker.from_pretrained()
    save_tts(TTSModel(tiny_tts_args()), tmp_path / "m")
    with pytest.raises(VoxkitError, match="codec folder"):
        Speaker.from_pretrained(tmp_path / "m")
