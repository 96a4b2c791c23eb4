"""voxkit.AudioChat on a tiny random model: generation equals the model's own greedy argmax, batches
equal single conversations, streams equal generate, transcription requests, and clear errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import torch

from tests.test_chat_model import tiny_causal_args, tiny_whisper_args
from voxkit.audio.write import save_audio, to_bytes_wav
from voxkit.chat.api import AudioChat
from voxkit.chat.checkpoint import save_chat
from voxkit.chat.model import ChatModel
from voxkit.errors import VoxkitError
from voxkit.tokenizer import TRANSCRIBE_ID, ByteTokenizer

TOK = ByteTokenizer()


def make_chat(seed: int = 0, causal: bool = False, max_audios: int = 8) -> AudioChat:
    torch.manual_seed(seed)
    args = (tiny_causal_args if causal else tiny_whisper_args)(TOK.vocab_size)
    return AudioChat(ChatModel(args).eval(), TOK, max_audios=max_audios)


def clip(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(int(seconds * 16000), generator=g)  # [N]


def audio_message(wav: torch.Tensor, question: str) -> list[dict]:
    data = base64.b64encode(to_bytes_wav(wav, 16000)).decode()
    return [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
                                         {"type": "text", "text": question}]}]


def naive_greedy(chat: AudioChat, messages: list[dict], n: int) -> list[int]:
    """Full forward over the whole sequence at every step: no cache, no generator."""
    ids, audios = chat._chat_prompt(messages)
    model = chat.model
    with torch.no_grad():
        audio = model.encode_audio(model.mel_chunks([a.samples for a in audios])) if audios else None
        out: list[int] = []
        for _ in range(n):
            tokens = torch.tensor([ids + out])
            hidden = model.decoder.forward_embeddings(model.embed(tokens, audio))
            nxt = int(model.decoder.logits(hidden)[0, -1].argmax())
            if nxt == TOK.eos_id:
                break
            out.append(nxt)
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_generate_equals_uncached_greedy(causal: bool) -> None:
    chat = make_chat(causal=causal)
    messages = audio_message(clip(0.4), "What is said?")
    reply = chat.generate(messages, max_new_tokens=12)
    assert isinstance(reply, str)
    assert reply == TOK.decode(naive_greedy(chat, messages, 12))


def test_batch_equals_single_and_stream_equals_generate() -> None:
    chat = make_chat(1)
    a = audio_message(clip(0.2, 1), "First?")
    b = audio_message(clip(0.5, 2), "A longer second question?") + [{"role": "assistant", "content": "ok"},
                                                                       {"role": "user", "content": "again"}]
    single = [chat.generate(a, max_new_tokens=10), chat.generate(b, max_new_tokens=10)]
    assert chat.generate([a, b], max_new_tokens=10) == single
    assert "".join(chat.stream(b, max_new_tokens=10)) == single[1]


def test_text_only_chat_and_sampling_seed() -> None:
    chat = make_chat(2)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    assert chat.generate(messages, max_new_tokens=8) == TOK.decode(naive_greedy(chat, messages, 8))
    one = chat.generate(messages, max_new_tokens=8, temperature=1.0, seed=7)
    assert one == chat.generate(messages, max_new_tokens=8, temperature=1.0, seed=7)


def test_transcribe_uses_the_transcription_request(tmp_path: Path) -> None:
    chat = make_chat(3)
    seen: list[list[int]] = []
    original = chat._batch

    def spy(prompts):  # noqa: ANN001, ANN202
        seen.extend(p[0] for p in prompts)
        return original(prompts)

    chat._batch = spy  # type: ignore[method-assign]
    path = tmp_path / "a.wav"
    save_audio(path, clip(0.3), 16000)
    text = chat.transcribe(path, language="en", max_new_tokens=6)
    assert isinstance(text, str)
    assert seen[0][-1] == TRANSCRIBE_ID and TOK.decode(seen[0][-8:-1]).endswith("lang:en")
    assert chat.transcribe(clip(0.3).numpy(), language=None, max_new_tokens=6) is not None


def test_saved_folder_loads_with_its_tokenizer(tmp_path: Path) -> None:
    chat = make_chat(4)
    save_chat(chat.model, tmp_path / "m", tokenizer=TOK)
    again = AudioChat.from_pretrained(tmp_path / "m")
    messages = audio_message(clip(0.3), "Hi?")
    assert again.generate(messages, max_new_tokens=6) == chat.generate(messages, max_new_tokens=6)
    # loaded for inference, the decoder's projections are fused (the fused CPU step engages), the
    # unfused model above gives the same reply, and the fusion changes no checkpoint key
    assert all(getattr(block.attention, "wqkv", None) is not None for block in again.model.decoder.layers)
    assert set(again.model.state_dict()) == set(chat.model.state_dict())
    save_chat(chat.model, tmp_path / "half", tokenizer=TOK, dtype=torch.float16)  # what voxkit export chat writes
    half = AudioChat.from_pretrained(tmp_path / "half")  # widened to float32 on load
    assert half.model.adapter[0].weight.dtype == torch.float32
    assert isinstance(half.generate(messages, max_new_tokens=6), str)
    kept = AudioChat.from_pretrained(tmp_path / "half", dtype=None)  # stored precision kept
    assert kept.model.encode_audio(kept.model.mel_chunks([clip(0.3)])).dtype == torch.float16


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "message"),
        ([{"role": "robot", "content": "hi"}], "role"),
        ([{"role": "assistant", "content": "hi"}], "user"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "image_url"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "bm90IGF1ZGlv", "format": "wav"}}]}], "audio"),
        ([{"role": "user", "content": [{"type": "audio", "path": "/no/such/file.wav"}]}], "not found"),
    ],
)
def test_bad_messages_are_clear_errors(messages: list, match: str) -> None:
    chat = make_chat(5)
    with pytest.raises(VoxkitError, match=match):
        chat.generate(messages, max_new_tokens=2)


def test_limits_are_clear_errors() -> None:
    chat = make_chat(6, max_audios=1)
    two = [{"role": "user", "content": [{"type": "audio", "array": clip(0.1).numpy(), "sampling_rate": 16000},
                                        {"type": "audio", "array": clip(0.1).numpy(), "sampling_rate": 16000}]}]
    with pytest.raises(VoxkitError, match="audio"):
        chat.generate(two, max_new_tokens=2)
    text = [{"role": "user", "content": "hi"}]
    with pytest.raises(VoxkitError, match="max_new_tokens"):
        chat.generate(text, max_new_tokens=0)
    with pytest.raises(VoxkitError, match="temperature"):
        chat.generate(text, max_new_tokens=2, temperature=-1)
    with pytest.raises(VoxkitError, match="language"):
        chat.transcribe(clip(0.1).numpy(), language="English")
    with pytest.raises(VoxkitError, match="positions"):  # longer than the decoder's max_seq_len (256)
        chat.generate([{"role": "user", "content": [{"type": "audio", "array": clip(30.0).numpy(), "sampling_rate": 16000}]}])


def test_no_bundled_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import voxkit.chat.api as api

    monkeypatch.setattr(api, "BUNDLED", tmp_path / "missing")
    with pytest.raises(VoxkitError, match="bundled"):
        AudioChat.from_pretrained()
