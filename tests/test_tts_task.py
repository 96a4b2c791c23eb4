"""The TTS model trains with the shared trainer on an encoded corpus and exports a folder that Speaker loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tts_helpers import CODEC, tiny_tts_args
from voxkit.cli.main import main as cli_main
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import save_codec
from voxkit.codec.model import CodecModel
from voxkit.data.manifest import write_manifest
from voxkit.errors import DataError
from voxkit.tokenizer import ByteTokenizer
from voxkit.tts.corpus import read_corpus
from voxkit.tts.model import IGNORE, TTSModel
from voxkit.tts.task import Example, TTSTask, TTSTaskConfig

RECIPE = """
[model]
name = "tts"
codec = "{codec}"
max_reference_frames = 20

[model.backbone]
dim = 32
n_layers = 2
head_dim = 8
n_heads = 4
n_kv_heads = 2
hidden_dim = 64
vocab_size = {vocab}
rope_theta = 1e4
tied_embeddings = true
max_seq_len = 256

[model.flow]
dim = 16
n_layers = 2
head_dim = 8
n_heads = 2
n_kv_heads = 2
hidden_dim = 32
vocab_size = 0
causal = false
max_seq_len = 3

[data]
tokenizer = "byte"

[optim]
lr = 3e-3
warmup_steps = 2
weight_decay = 0.0

[train]
max_steps = {steps}
log_every = 1
save_every = {steps}
eval_every = 0
out_dir = "{out}"
progress = false

[tasks.tts]
train = ["{corpus}"]
dev = ["{corpus}"]
batch_size = 4
dev_examples = 4
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(codec folder, encoded corpus) of tones: two 'speakers' (low and high pitch), four clips each."""
    root = tmp_path_factory.mktemp("tts_corpus")
    torch.manual_seed(0)
    save_codec(CodecModel(CodecArgs(**CODEC)), root / "codec")  # type: ignore[arg-type]
    rows = []
    for i in range(8):
        pitch = 200 if i % 2 else 900
        t = np.arange(int(24000 * (0.5 + 0.1 * i))) / 24000
        path = root / f"{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), 24000)
        rows.append({"audio": str(path), "text": f"tone number {i}.", "language": "en", "speaker": f"tone{pitch}",
                     "duration": len(t) / 24000, "engine": "numpy"})
    write_manifest(root / "m.jsonl", rows)
    assert cli_main(["data", "tts", str(root / "m.jsonl"), "--codec", str(root / "codec"), "--out", str(root / "corpus")]) == 0
    return root / "codec", root / "corpus"


def test_corpus_holds_the_codec_frames(corpus: tuple[Path, Path]) -> None:
    from voxkit.codec.api import Codec

    codec, folder = corpus
    clips = read_corpus(folder)
    assert len(clips) == 8 and {c.speaker for c in clips} == {"tone200", "tone900"}
    first = Codec.from_pretrained(codec).encode(str(folder.parent / "0.wav"))
    assert torch.equal(clips[0].codes, first) and clips[0].engine == "numpy"


def test_examples_put_targets_on_the_positions_before_each_frame(corpus: tuple[Path, Path]) -> None:
    _, folder = corpus
    model = TTSModel(tiny_tts_args())
    task = TTSTask(TTSTaskConfig(train=[str(folder)], no_reference=0.0), model, ByteTokenizer())
    clips = task.clips
    example = Example(clips[0], clips[2], with_text=True)  # same speaker (tone900), another clip
    item = task.encode(example)
    T = clips[0].codes.shape[0]
    L = item["tokens"].shape[0] - T
    assert item["tokens"][L - 1] == 25 and (item["tokens"][L:] == 24).all()  # [BEGIN_AUDIO], then the frames
    assert torch.equal(item["codes"][L:], clips[0].codes)
    assert torch.equal(item["semantic"][L - 1 : L - 1 + T], clips[0].codes[:, 0])
    assert item["semantic"][-1] == model.args.end_audio_id and (item["semantic"][: L - 1] == IGNORE).all()
    assert torch.equal(item["acoustic"][L - 1 : L - 1 + T], clips[0].codes[:, 1:]) and (item["acoustic"][-1] == -1).all()
    ref = clips[2].codes.shape[0]
    assert torch.equal(item["codes"][2 : 2 + ref], clips[2].codes)  # the reference frames after BOS [BEGIN_AUDIO]
    for ex in task._examples(task.clips, task.by_speaker, __import__("random").Random(0)):
        assert ex.reference is None or (ex.reference.speaker == ex.target.speaker and ex.reference is not ex.target)


def test_recipe_trains_exports_and_speaks(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from voxkit.tts.api import Speaker

    codec, folder = corpus
    out = tmp_path / "run"
    recipe = tmp_path / "tts.toml"
    recipe.write_text(RECIPE.format(codec=codec, vocab=ByteTokenizer().vocab_size, steps=40, out=out, corpus=folder))
    torch.manual_seed(0)
    assert cli_main(["train", str(recipe)]) == 0
    scalars = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    semantic = [r["train/tts/semantic_loss"] for r in scalars if "train/tts/semantic_loss" in r]
    flow = [r["train/tts/flow_loss"] for r in scalars if "train/tts/flow_loss" in r]
    assert len(semantic) == 40 and np.mean(semantic[-5:]) < 0.7 * np.mean(semantic[:5])
    assert np.mean(flow[-5:]) < np.mean(flow[:5])
    assert "eval/tts/dev_semantic_loss" in scalars[-1]
    # a training checkpoint speaks directly, and exports to a self-contained folder with a preset voice
    checkpoint = sorted((out / "checkpoints").iterdir())[-1]
    audio, rate = Speaker.from_pretrained(checkpoint).speak("tone number 3.", voice=str(folder.parent / "7.wav"), seed=0)
    assert rate == 24000 and audio.size > 0
    model_dir = tmp_path / "model"
    voice = f"low={folder.parent / '7.wav'}:tone number 7."
    assert cli_main(["export", "tts", str(out), "--out", str(model_dir), "--voice", voice]) == 0
    assert (model_dir / "codec" / "params.json").is_file() and json.loads((model_dir / "params.json").read_text())["tokenizer"] == "byte"
    speaker = Speaker.from_pretrained(model_dir)
    assert speaker.voices == ["low"] and speaker.prepare_voice("low").text == "tone number 7."
    again, _ = speaker.speak("tone number 3.", voice="low", seed=0)
    assert again.size > 0
    # a folder that names a codec beside it instead of holding a copy (how a bundled model shares the bundled codec)
    linked = codec.parent / "linked"
    assert cli_main(["export", "tts", str(out), "--out", str(linked), "--codec-link", "../codec"]) == 0
    assert not (linked / "codec").exists() and json.loads((linked / "params.json").read_text())["voxkit_tts"]["codec"] == "../codec"
    ref = str(folder.parent / "7.wav")  # the copy's codec layers are float16, the linked codec float32: equal to rounding
    np.testing.assert_allclose(Speaker.from_pretrained(linked).speak("tone number 3.", voice=ref, seed=0)[0],
                               Speaker.from_pretrained(model_dir).speak("tone number 3.", voice=ref, seed=0)[0], atol=1e-4)
    assert cli_main(["export", "tts", str(out), "--out", str(tmp_path / "bad"), "--codec-link", "../nowhere"]) == 2


def test_corpus_of_another_codec_is_refused(corpus: tuple[Path, Path]) -> None:
    _, folder = corpus
    other = TTSModel(tiny_tts_args(semantic_codebook_size=8))
    with pytest.raises(DataError, match="another codec"):
        TTSTask(TTSTaskConfig(train=[str(folder)]), other, ByteTokenizer())


@pytest.fixture
def relative_run(corpus: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(work dir, run folder) of a one-step run trained in ``work`` with ``model.codec=codecx`` and a relative out_dir."""
    import shutil

    codec, folder = corpus
    work = tmp_path / "work"
    shutil.copytree(codec, work / "codecx")
    recipe = work / "tts.toml"
    recipe.write_text(RECIPE.format(codec="codecx", vocab=ByteTokenizer().vocab_size, steps=1, out="runs/t", corpus=folder))
    monkeypatch.chdir(work)
    torch.manual_seed(0)
    assert cli_main(["train", "tts.toml"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # every export below runs from another directory than training did
    return work, work / "runs" / "t"


def test_relative_codec_is_found_where_training_ran(relative_run: tuple[Path, Path], tmp_path: Path) -> None:
    from voxkit.tts.checkpoint import load_tts

    work, run = relative_run
    checkpoint = sorted((run / "checkpoints").iterdir())[-1]
    assert json.loads((checkpoint / "recipe.json").read_text())["model"]["codec"] == "codecx"  # recorded as written
    (tmp_path / "elsewhere" / "codecx").mkdir()  # a folder of the same name here is not the run's codec
    assert load_tts(checkpoint)[1] == work / "codecx"
    assert cli_main(["export", "tts", str(run), "--out", "exptts"]) == 0
    exported = tmp_path / "elsewhere" / "exptts"
    assert (exported / "codec" / "params.json").read_text() == (work / "codecx" / "params.json").read_text()
    assert load_tts(exported)[1] == exported / "codec"  # the published layout names its own copy
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def _leaves_nothing(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(argv[argv.index("--out") + 1])
    before = set(out.absolute().parent.iterdir())
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert set(out.absolute().parent.iterdir()) == before and not out.exists()  # no partial model folder, no staging folder


def test_failed_export_writes_nothing(relative_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work, run = relative_run
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    _leaves_nothing(["export", "tts", str(run), "--out", "exptts", "--voice", f"v={text}"], "cannot decode audio", capsys)
    _leaves_nothing(["export", "tts", str(run), "--out", "exptts", "--voice", f".hidden={text}"], "bad voice name", capsys)
    _leaves_nothing(["export", "tts", str(run), "--out", "exptts", "--voice", f"v={text}", "--voice", f"v={text}"],
                    "--voice v is given twice", capsys)
    (work / "codecx").rename(work / "moved")  # neither where training ran, nor here, nor the trainer's absolute path
    _leaves_nothing(["export", "tts", str(run), "--out", "exptts"], "model.codec='codecx'", capsys)



def test_a_codebook_wider_than_int16_keeps_its_codes_in_the_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a 65536-code semantic codebook: int16 storage wrote code 40000 as -25536
    from voxkit.codec.api import Codec
    from voxkit.tts.corpus import encode_manifests

    torch.manual_seed(0)
    save_codec(CodecModel(CodecArgs(**{**CODEC, "semantic_codebook_size": 65536})), tmp_path / "codec")  # type: ignore[arg-type]
    sf.write(tmp_path / "a.wav", np.zeros(12000, np.float32), 24000)
    write_manifest(tmp_path / "m.jsonl", [{"audio": str(tmp_path / "a.wav"), "text": "noise.", "duration": 0.5}])
    codes = torch.zeros(7, 37, dtype=torch.long)  # [T, 37]
    codes[:, 0] = torch.arange(40000, 40007)
    monkeypatch.setattr(Codec, "encode", lambda self, audio, sample_rate=None: codes)  # codes past int16's range
    encode_manifests([str(tmp_path / "m.jsonl")], str(tmp_path / "codec"), tmp_path / "corpus", progress=False)
    (clip,) = read_corpus(tmp_path / "corpus")
    assert torch.equal(clip.codes, codes)


def test_a_preset_voice_keeps_codes_past_int16(tmp_path: Path) -> None:
    from voxkit.tts.checkpoint import load_voice, save_voice

    codes = torch.zeros(3, 37, dtype=torch.long)  # [R, 37]
    codes[:, 0] = torch.tensor([40000, 7, 65535])
    save_voice(tmp_path, "v", codes, "hello")
    assert torch.equal(load_voice(tmp_path, "v")[0], codes)
    save_voice(tmp_path, "small", codes.clamp(max=100), "hello")  # codes that fit stay 2 bytes each
    from safetensors import safe_open

    with safe_open(str(tmp_path / "voices" / "small.safetensors"), framework="pt") as f:
        assert f.get_tensor("codes").dtype == torch.int16
