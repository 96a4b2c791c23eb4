"""Audio chat, text generation and TTS as a new user drives them: batches that answer as single
calls do, flags that would be silently ignored, text in the wrong encoding, early-stopped streams,
and mistakes that must be one line said before a model loads."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.cli_helpers import one_line_error, run_cli
from tests.test_chat_api import make_chat
from tests.test_chat_model import tiny_whisper_args
from tts_helpers import tiny_tts_folder
from voxkit.audio.write import save_audio
from voxkit.chat.checkpoint import save_chat
from voxkit.chat.model import ChatModel
from voxkit.errors import AudioError, OptionError, VoxkitError
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.generate import Generator
from voxkit.tokenizer import ByteTokenizer
from voxkit.tts.api import Speaker
from voxkit.tts.generate import GenerationOptions

TOK = ByteTokenizer()
UNDECODABLE = "caf\udce9"  # what Python makes of the Latin-1 bytes b"caf\xe9" of a command-line argument


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A text backbone, an audio-chat model and a TTS model, each in its own folder, and a clip."""
    root = tmp_path_factory.mktemp("user")
    torch.manual_seed(0)
    args = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=TOK.vocab_size,
                           sliding_window=16, rope_theta=10000.0)
    args.extra["tokenizer"] = "byte"
    (root / "lm").mkdir()
    save_file({k: v.contiguous() for k, v in Transformer(args).state_dict().items()}, str(root / "lm" / "consolidated.safetensors"))
    (root / "lm" / "params.json").write_text(json.dumps(args.to_dict()))
    full = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=TOK.vocab_size,
                           rope_theta=1e4, max_seq_len=64)  # full attention over a context of 64 positions
    full.extra["tokenizer"] = "byte"
    (root / "full").mkdir()
    save_file({k: v.contiguous() for k, v in Transformer(full).state_dict().items()}, str(root / "full" / "consolidated.safetensors"))
    (root / "full" / "params.json").write_text(json.dumps(full.to_dict()))
    save_chat(ChatModel(tiny_whisper_args(TOK.vocab_size)).eval(), root / "chat", tokenizer=TOK)
    tiny_tts_folder(root / "tts")
    save_audio(root / "clip.wav", 0.1 * torch.randn(8000), 16000)
    return {"lm": root / "lm", "full": root / "full", "chat": root / "chat", "tts": root / "tts", "clip": root / "clip.wav"}


@pytest.fixture(scope="module")
def speaker(folders: dict[str, Path]) -> Speaker:
    return Speaker.from_pretrained(folders["tts"])


# ----------------------------------------------------------------------------- batches and their caps


def test_a_batch_answers_each_conversation_as_it_is_answered_alone_when_the_context_caps_replies() -> None:
    """The reply budget was the room left after the batch's LONGEST prompt, so a short conversation
    batched beside a long one was cut to the long one's room (25 characters instead of 240)."""
    chat = make_chat(0)
    short = [{"role": "user", "content": "hi"}]
    long = [{"role": "user", "content": "word " * 45}]
    alone = [chat.generate(short, max_new_tokens=1000), chat.generate(long, max_new_tokens=1000)]
    room_of_long = chat.model.args.decoder.max_seq_len - len(chat._chat_prompt(long)[0])
    assert len(alone[0]) > room_of_long  # a byte token makes at most one character: the cap binds here
    assert chat.generate([short, long], max_new_tokens=1000) == alone


def test_a_bad_conversation_in_a_batch_is_named(tmp_path: Path) -> None:
    """The message said "message 0 ..." without which conversation of the batch held it."""
    chat = make_chat(0)
    good = [{"role": "user", "content": "hi"}]
    with pytest.raises(VoxkitError, match=r"^conversation 1 of the batch: message 0 \(user\) has empty content$"):
        chat.generate([good, [{"role": "user", "content": ""}]], max_new_tokens=2)
    missing = tmp_path / "none.wav"
    with pytest.raises(AudioError, match=f"^conversation 2 of the batch: message 0, part 0: audio file not found: {missing}$"):
        chat.generate([good, good, [{"role": "user", "content": [{"type": "audio", "path": str(missing)}]}]], max_new_tokens=2)
    with pytest.raises(VoxkitError, match=r"^message 0 \(user\) has empty content$"):  # one conversation: nothing to name
        chat.generate([{"role": "user", "content": ""}], max_new_tokens=2)


def test_generator_limits_cap_each_stream_on_its_own() -> None:
    torch.manual_seed(1)
    args = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=TOK.vocab_size,
                           rope_theta=1e4, max_seq_len=128)
    generator = Generator(Transformer(args).eval())  # no stop ids: only the caps end the streams
    prompts = [TOK.encode("hello"), TOK.encode("a longer prompt")]
    both = generator.generate(prompts, 12, limits=[5, 12])
    assert both == [generator.generate(prompts[:1], 5)[0], generator.generate(prompts[1:], 12)[0]]
    assert [len(r) for r in both] == [5, 12]
    streamed = [step for step in generator.stream(prompts, 12, limits=[5, 12])]
    assert [s[0] for s in streamed[:5]] == both[0] and all(s[0] is None for s in streamed[5:])
    for bad in ([5], [0, 3], [5, 13], [5.0, 3]):
        with pytest.raises(OptionError, match="limits"):
            generator.generate(prompts, 12, limits=bad)


# ----------------------------------------------------------------------------- text in the wrong encoding


def test_text_that_is_not_unicode_is_a_clear_error_in_every_api(speaker: Speaker) -> None:
    """A lone surrogate reached the tokenizer and came out as a UnicodeEncodeError traceback."""
    chat = make_chat(0)
    with pytest.raises(VoxkitError, match=r"message 0, part 0: the text is not valid Unicode: character 4 .*byte 0xe9"):
        chat.generate([{"role": "user", "content": UNDECODABLE}])
    with pytest.raises(OptionError, match="the text is not valid Unicode: character 4 is the lone surrogate U[+]DCE9"):
        speaker.speak(UNDECODABLE)
    with pytest.raises(OptionError, match="reference_text is not valid Unicode"):
        speaker.speak("Hello.", voice="demo", reference_text=UNDECODABLE)


@pytest.mark.parametrize(("argv", "start"), [
    (["chat", UNDECODABLE, "--model", "{chat}"], "voxkit chat: error: the question is not valid Unicode"),
    (["chat", "Hi", "--system", UNDECODABLE, "--model", "{chat}"], "voxkit chat: error: --system is not valid Unicode"),
    (["generate", UNDECODABLE, "--model", "{lm}"], "voxkit generate: error: the prompt is not valid Unicode"),
    (["speak", UNDECODABLE, "-o", "{out}", "--model", "{tts}"], "voxkit speak: error: the text is not valid Unicode"),
])
def test_command_line_text_in_another_encoding_is_one_line(folders: dict[str, Path], tmp_path: Path, argv: list[str], start: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(out=tmp_path / "o.wav", **{k: str(v) for k, v in folders.items()}) for a in argv]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and one_line_error(err).startswith(start) and "0xe9" in err
    assert not (tmp_path / "o.wav").exists()


def test_speak_reads_stdin_as_utf8_and_refuses_other_bytes_before_the_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("Un caf\xe9.".encode("latin-1")), encoding="utf-8"))
    code, _, err = run_cli(["speak", "-", "-o", str(tmp_path / "o.wav"), "--model", str(tmp_path / "no-model")], capsys)
    assert code == 2 and one_line_error(err) == ("voxkit speak: error: the text on stdin is not UTF-8: byte 0xe9 at offset 6 "
                                                 "(convert it first, e.g. iconv -f latin1 -t utf-8)")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + "Un caf\xe9.".encode("latin-1"))))
    code, _, err = run_cli(["speak", "-", "-o", str(tmp_path / "o.wav"), "--model", str(tmp_path / "no-model")], capsys)
    assert code == 2 and "byte 0xe9 at offset 9 " in one_line_error(err)  # counted in the bytes piped in, mark included


# ----------------------------------------------------------------------------- flags that would be ignored


@pytest.mark.parametrize(("flags", "message"), [
    (["--seed", "3"], "--seed shapes sampling, and --temperature 0 (the default) is greedy: add --temperature (e.g. 0.7) or drop it"),
    (["--top-k", "5"], "--top-k shapes sampling"),
    (["--top-p", "0.5", "--top-k", "5", "--seed", "1", "--temperature", "0"], "--top-p, --top-k and --seed shape sampling"),
])
def test_generate_refuses_sampling_flags_that_greedy_decoding_would_ignore(folders: dict[str, Path], flags: list[str], message: str,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["generate", "--model", str(folders["lm"]), "Hello", *flags], capsys)
    assert code == 2 and out == "" and message in one_line_error(err)
    code, out, _ = run_cli(["generate", "--model", str(folders["lm"]), "Hello", "--max-tokens", "4", "--temperature", "0.7", *flags[:2]],
                           capsys)
    assert code == 0 and out


def test_generate_stops_where_the_models_context_ends(folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--max-tokens 1000 on a model of 64 positions ran 1000 steps past its context (and a huge
    request sized a full-attention cache to it): the text now stops at the context, as AudioChat's do."""
    from voxkit.lm.loading import load_transformer

    prompt = TOK.encode("Hello")
    room = 64 - len(prompt)
    ids = Generator(load_transformer(folders["full"]), stop_ids=[TOK.eos_id]).generate([prompt], room)[0]
    assert len(ids) == room  # this seed's model does not end the text before the context does
    for max_tokens in ("1000", "100000000000"):
        code, out, err = run_cli(["generate", "--model", str(folders["full"]), "--max-tokens", max_tokens, "Hello"], capsys)
        assert code == 0 and out == TOK.decode(ids) + "\n", err
    code, _, err = run_cli(["generate", "--model", str(folders["full"]), "x" * 70], capsys)
    assert code == 2 and one_line_error(err).endswith("the prompt takes 71 tokens, this model reads at most 63 (shorten the prompt)")


def test_generate_names_the_command_for_a_chat_recogniser_or_tts_folder(folders: dict[str, Path],
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Such a folder loaded as a text backbone failed with a list of missing and unexpected weights."""
    recogniser = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "realtime-tiny"
    for folder, says in ((folders["chat"], "is an audio-chat model: chat with it (voxkit chat"),
                         (folders["tts"], "is a TTS model: speak with it (voxkit speak"),
                         (recogniser, "is a speech recogniser: transcribe with it (voxkit transcribe")):
        code, _, err = run_cli(["generate", "--model", str(folder), "Hello"], capsys)
        assert code == 2 and says in one_line_error(err) and "missing keys" not in err


@pytest.mark.parametrize(("flags", "message"), [
    (["--transcribe", "--audio", "{clip}", "--language", ""], "language must be a two- or three-letter lowercase ISO 639 code"),
    (["Hi", "--system", ""], "--system is empty: give the system prompt's text, or drop --system"),
    (["Hi", "--system", "   "], "--system is empty"),
])
def test_chat_refuses_empty_flags_instead_of_dropping_them(folders: dict[str, Path], flags: list[str], message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """An empty --language was sent as English, an empty --system was left out, both without a word."""
    args = [a.format(clip=folders["clip"]) for a in flags]
    code, out, err = run_cli(["chat", "--model", str(folders["chat"]), "--max-new-tokens", "3", *args], capsys)
    assert code == 2 and out == "" and message in one_line_error(err)


# ----------------------------------------------------------------------------- voxkit speak


def test_speak_lists_voices_without_a_text_and_asks_for_one_otherwise(folders: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["speak", "--list-voices", "--model", str(folders["tts"])], capsys)
    assert code == 0 and out == "voices: demo\nlanguages: en, fr\n"
    code, _, err = run_cli(["speak", "-o", str(tmp_path / "o.wav"), "--model", str(folders["tts"])], capsys)
    assert code == 2 and "say what to speak" in one_line_error(err)


def test_speak_mistakes_are_said_before_the_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An empty text and a missing player were found only after the model had loaded and the voice was encoded."""
    missing = str(tmp_path / "no-model")  # loading it would fail with another message
    code, _, err = run_cli(["speak", "  ", "-o", str(tmp_path / "o.wav"), "--model", missing], capsys)
    assert code == 2 and one_line_error(err) == "voxkit speak: error: nothing to say: the text is empty"
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed: importing it raises ImportError
    code, _, err = run_cli(["speak", "Hi.", "--stream", "--model", missing], capsys)
    assert code == 2 and "playing audio needs sounddevice" in one_line_error(err)


def test_flow_steps_have_an_upper_bound(speaker: Speaker) -> None:
    """steps=10**9 built a schedule of 10**9 time tokens in a Python loop: gigabytes, then a hang."""
    with pytest.raises(OptionError, match="steps must be a whole number from 1 to 1000"):
        GenerationOptions(steps=10**9)
    with pytest.raises(OptionError, match="steps"):
        speaker.stream("Hello.", steps=1001)
    assert GenerationOptions(steps=1000).steps == 1000


def test_a_speech_stream_closes_like_a_generator(speaker: Speaker) -> None:
    stream = speaker.stream("One. Two. Three.", voice="demo", seed=2)
    first = next(stream)
    assert first.dtype == np.float32 and first.size > 0
    stream.close()
    assert list(stream) == []
    stream.close()  # closing twice is harmless, as for a generator


def test_undecodable_voice_bytes_name_no_placeholder(speaker: Speaker) -> None:
    from voxkit.audio.io import READABLE

    with pytest.raises(VoxkitError) as err:
        speaker.prepare_voice(io.BytesIO(b"not audio at all" * 64))
    assert str(err.value) == ("reference audio: not readable as audio (cannot decode audio: Format not recognised "
                              f"(voxkit reads {READABLE}))")


def test_text_without_words_is_nothing_to_say(speaker: Speaker) -> None:
    """"." gave 2.2 s of babble: a sentence of punctuation or symbols has nothing to say."""
    for text in (".", "...", "!!! ???", "— …", "😀"):
        with pytest.raises(VoxkitError, match="^nothing to say: the text has no words, only punctuation or symbols$"):
            speaker.sentences(text)
        with pytest.raises(VoxkitError, match="^nothing to say"):
            speaker.speak(text, voice="demo")
    assert speaker.sentences("... Hello. Bye.") == ["Hello.", "Bye."]  # a leading "..." is a sentence of its own
    assert speaker.sentences("😀. Hello.") == ["Hello."]
    assert speaker.sentences("3.") == ["three."]


def test_a_stream_says_which_part_of_the_text_it_speaks(speaker: Speaker) -> None:
    """A long text takes minutes; seconds spoken alone did not say how far through it a take was."""
    stream = speaker.stream("One. Two. Three.", voice="demo", seed=2)
    assert (stream.parts, stream.part) == (3, 0)
    seen = []
    for _ in stream:
        seen.append(stream.part)
    assert seen[0] == 1 and seen[-1] == 3 and seen == sorted(seen)
