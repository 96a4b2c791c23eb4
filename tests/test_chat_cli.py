"""``voxkit chat`` and ``voxkit eval chat`` as a user runs them: answers, transcripts, tables, and
one-line errors for mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import one_line_error, run_cli
from tests.test_chat_model import tiny_whisper_args
from voxkit.audio.write import save_audio
from voxkit.chat.checkpoint import save_chat
from voxkit.chat.instructions import ChatExample, write_examples
from voxkit.chat.model import ChatModel
from voxkit.tokenizer import ByteTokenizer


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = ChatModel(tiny_whisper_args(ByteTokenizer().vocab_size)).eval()
    return save_chat(model, tmp_path / "model", tokenizer=ByteTokenizer())


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    save_audio(path, 0.1 * torch.randn(8000), 16000)
    return path


def test_chat_answers_streams_and_transcribes(model_dir: Path, clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["chat", "--model", str(model_dir), "--max-new-tokens", "5"]
    code, streamed, err = run_cli([*base, "What is said?", "--audio", str(clip)], capsys)
    assert code == 0 and err == "" and streamed.endswith("\n")
    code, whole, _ = run_cli([*base, "What is said?", "--audio", str(clip), "--no-stream"], capsys)
    assert code == 0 and whole == streamed  # the same greedy answer either way
    code, out, _ = run_cli([*base, "--transcribe", "--audio", str(clip)], capsys)
    assert code == 0 and out.endswith("\n")
    code, again, _ = run_cli([*base, "--transcribe", "--audio", str(clip), "--temperature", "0", "--language", "en"], capsys)
    assert code == 0 and again == out  # greedy and English are what transcription does anyway
    code, out, _ = run_cli([*base, "Hello", "--system", "Be brief."], capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([], "question"),
        (["--transcribe"], "exactly one"),
        (["--transcribe", "Why?", "--audio", "{clip}"], "no question"),
        (["Why?", "--audio", "/no/such.wav"], "not found"),
        (["Why?", "--device", "cuda:7"], "device"),
        (["--transcribe", "--audio", "{clip}", "--language", "English"], "language"),
        (["Why?", "--max-new-tokens", "0"], "max-new-tokens"),
        (["word " * 100], "its text takes 503 positions, this model reads at most 255 (shorten the text)"),
        (["--transcribe", "--audio", "{clip}", "--temperature", "0.7"], "is greedy and takes no system prompt: drop --temperature"),
        (["--transcribe", "--audio", "{clip}", "--top-p", "0.9", "--seed", "1"], "drop --top-p, --seed"),
        (["--transcribe", "--audio", "{clip}", "--system", "Be brief."], "drop --system"),
        (["Why?", "--language", "fr"], "--language is the hint of the transcription request"),
        (["Why?", "--seed", "3"], "--seed shapes sampling, and --temperature 0 (the default) is greedy: add --temperature"),
        (["Why?", "--top-p", "0.9", "--seed", "3", "--temperature", "0"], "--top-p and --seed shape sampling"),
    ],
)
def test_chat_mistakes_are_one_line_errors(
    model_dir: Path, clip: Path, capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    if torch.cuda.is_available() and "cuda:7" in extra and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU 7")
    args = ["chat", "--model", str(model_dir), *[e.replace("{clip}", str(clip)) for e in extra]]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and match in one_line_error(err)


def test_chat_without_a_model_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["chat", "Why?", "--model", str(tmp_path / "none")], capsys)
    assert code == 2 and "does not exist" in one_line_error(err)


def test_eval_chat_prints_wer_and_accuracy(model_dir: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": str(clip), "text": "hello there", "duration": 0.5}) + "\n")
    examples = tmp_path / "q.jsonl"
    question = [{"role": "user", "content": [{"type": "audio", "path": str(clip)}, {"type": "text", "text": "How many words?"}]}]
    write_examples(examples, [ChatExample("count_words", question, "2")])
    out_json = tmp_path / "out.json"
    code, out, _ = run_cli(["eval", "chat", str(manifest), "--model", str(model_dir), "--instructions", str(examples),
                            "--peer", "none", "--quiet", "--json", str(out_json)], capsys)
    assert code == 0
    assert "WER %" in out and "count_words" in out
    numbers = json.loads(out_json.read_text())
    assert numbers["wer"][str(manifest)][str(model_dir)]["clips"] == 1
    assert numbers["accuracy"][str(model_dir)]["count_words"]["total"] == 1
    code, _, err = run_cli(["eval", "chat", str(manifest), "--peer", "none"], capsys)
    assert code == 2 and "--model" in one_line_error(err)


def test_eval_chat_scores_an_english_peer_on_english_rows_only(model_dir: Path, clip: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Whisper tiny.en writes English words for Spanish speech: its column scored those rows too,
    pulling its figure towards 100 %; it now scores the English rows and says over how many."""
    import voxkit.asr.peer as peers

    heard: list[int] = []

    class EnglishPeer:
        name = "english-peer"
        languages = ("en",)

        def transcribe(self, wave: torch.Tensor) -> str:
            heard.append(wave.shape[0])
            return "hello there"

    monkeypatch.setattr(peers, "load_peer", lambda name, threads=0: EnglishPeer())
    manifest = tmp_path / "m.jsonl"
    rows = [{"audio": str(clip), "text": "hello there", "language": "en"}, {"audio": str(clip), "text": "hola amigo", "language": "es"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run_cli(["eval", "chat", str(manifest), "--model", str(model_dir), "--quiet"], capsys)
    assert code == 0 and len(heard) == 1
    assert "| 0.0 (1 of 2 clips) |" in out
