"""`voxkit train`, `voxkit data` and `voxkit export` used the way a new user uses them: restarts after
Ctrl-C, run folders given where a file goes, malformed manifests, flags checked before slow work."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cli_helpers import one_line_error, run_cli
from voxkit.data.dataset import ManifestDataset
from voxkit.data.manifest import read_manifest
from voxkit.errors import DataError
from voxkit.lm import Transformer, TransformerArgs
from voxkit.train.checkpointing import latest_checkpoint
from voxkit.train.registry import ModelSpec, TaskSpec, register_model, register_task

VOCAB = 16
BUILT: list[str] = []  # names of the models the probe factory built, in order


@dataclasses.dataclass
class ProbeModelOptions:
    dim: int = 16


@dataclasses.dataclass
class ProbeTaskOptions:
    interrupt_at: int = 0  # > 0: Ctrl-C while fetching this batch (1-based, counted over the run)


class ProbeTask:
    """Next-token prediction on a counting sequence; may raise KeyboardInterrupt as a user's Ctrl-C would."""

    def __init__(self, interrupt_at: int) -> None:
        self.interrupt_at = interrupt_at
        self.fetched = 0

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(epoch)
        for _ in range(4):
            self.fetched += 1
            if self.fetched == self.interrupt_at:
                raise KeyboardInterrupt
            yield torch.randint(0, VOCAB, (2, 9), generator=g)

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch[:, :-1])  # [B, T, V]
        return F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()), {}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}


def _build_model(options: ProbeModelOptions) -> Transformer:
    BUILT.append("probe")
    return Transformer(TransformerArgs(dim=options.dim, n_layers=1, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=2, vocab_size=VOCAB))


register_model("user_probe_lm", ModelSpec(ProbeModelOptions, build=_build_model))
register_task("user_probe", TaskSpec(ProbeTaskOptions, build=lambda options, model, recipe: ProbeTask(options.interrupt_at)))

RECIPE = """
[model]
name = "user_probe_lm"

[optim]
lr = 1e-2
warmup_steps = 1

[train]
max_steps = 4
log_every = 1
save_every = 2
progress = false

[tasks.user_probe]
interrupt_at = 0
"""


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    return path


def _logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "scalars.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- voxkit train


def test_a_restart_after_ctrl_c_logs_one_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C before the first checkpoint leaves scalars.jsonl behind; the run started again in the same
    out_dir must not append a second curve to it (each step logged twice)."""
    out = tmp_path / "run"
    recipe = str(_recipe(tmp_path))
    code, _, err = run_cli(["train", recipe, f"train.out_dir={out}", "tasks.user_probe.interrupt_at=2"], capsys)
    assert code == 130 and "interrupted" in err
    assert latest_checkpoint(out) is None and _logged_steps(out) == [1]
    code, _, _ = run_cli(["train", recipe, f"train.out_dir={out}"], capsys)
    assert code == 0
    assert _logged_steps(out) == [1, 2, 3, 4]


def test_resume_past_a_half_written_scalars_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run killed while writing its log leaves half a line; the resume drops it instead of a traceback."""
    out = tmp_path / "run"
    recipe = str(_recipe(tmp_path))
    assert run_cli(["train", recipe, f"train.out_dir={out}", "train.max_steps=2"], capsys)[0] == 0
    with (out / "scalars.jsonl").open("a") as f:
        f.write('{"step": 3, "time": 17')
    code, _, err = run_cli(["train", recipe, f"train.out_dir={out}", "train.max_steps=4", "--resume"], capsys)
    assert code == 0 and "Traceback" not in err
    assert _logged_steps(out) == [1, 2, 3, 4]


def test_a_fresh_run_into_a_used_out_dir_is_refused_before_the_model_is_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    recipe = str(_recipe(tmp_path))
    assert run_cli(["train", recipe, f"train.out_dir={out}"], capsys)[0] == 0
    built = len(BUILT)
    code, _, err = run_cli(["train", recipe, f"train.out_dir={out}"], capsys)
    assert code == 2 and "already holds checkpoints: resume with --resume" in one_line_error(err)
    assert len(BUILT) == built  # refused before a model (of any size) and its data were built


def test_a_run_folder_given_as_the_recipe_names_its_saved_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", str(_recipe(tmp_path)), f"train.out_dir={out}", "train.max_steps=2"], capsys)[0] == 0
    code, _, err = run_cli(["train", str(out), "--resume"], capsys)
    line = one_line_error(err)
    assert code == 2 and f"{out} is a folder, not a recipe file" in line and str(out / "recipe.json") in line


# ---------------------------------------------------------------------------- manifests with fields of the wrong type


def _manifest(tmp_path: Path, **bad: object) -> Path:
    """Two rows; the second gets the ``bad`` fields."""
    row = {"audio": "a.wav", "text": "hello there", "duration": 1.0,
           "words": [{"word": "hello", "start": 0.1, "end": 0.4}, {"word": "there", "start": 0.5, "end": 0.9}]}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps({**row, **bad}) + "\n")
    return path


@pytest.mark.parametrize("bad", [{"duration": "abc"}, {"duration": None}, {"duration": float("nan")}, {"text": None},
                                 {"words": "hello there"}, {"words": [{"word": "hello"}]}])
def test_training_data_with_a_field_of_the_wrong_type_is_one_error_naming_the_line(tmp_path: Path, bad: dict) -> None:
    path = _manifest(tmp_path, **bad)
    with pytest.raises(DataError, match=f"^{path}:2: .*voxkit data check"):
        ManifestDataset([path])


def test_readers_without_word_timings_do_not_check_them(tmp_path: Path) -> None:
    path = _manifest(tmp_path, words="not timings")
    assert len(read_manifest(path)) == 2  # an evaluation reads audio and text only
    with pytest.raises(DataError, match="words must be a list"):
        read_manifest(path, words=True)


def test_vocab_and_chat_refuse_malformed_rows_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = _manifest(tmp_path, words="hello there")
    code, _, err = run_cli(["data", "vocab", str(words), "--out", str(tmp_path / "vocab")], capsys)
    assert code == 2 and f"{words}:2: words must be a list" in one_line_error(err)
    duration = _manifest(tmp_path, duration="abc")
    code, _, err = run_cli(["data", "chat", str(duration), "--out", str(tmp_path / "chat.jsonl")], capsys)
    assert code == 2 and f"{duration}:2: bad duration 'abc'" in one_line_error(err)


# ---------------------------------------------------------------------------- voxkit data


def test_data_check_flags_an_empty_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, out, err = run_cli(["data", "check", str(empty)], capsys)
    assert code == 1 and f"{empty}: no rows" in err and "rows ok" not in out + err


def test_data_manifest_of_a_missing_folder_makes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "recordings"
    code, _, err = run_cli(["data", "manifest", str(missing)], capsys)
    assert code == 2 and f"folder not found: {missing}" in one_line_error(err)
    assert not missing.exists()  # a second try would otherwise say the folder holds no audio
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    code, _, err = run_cli(["data", "manifest", str(a_file)], capsys)
    assert code == 2 and f"{a_file} is a file, not a folder of recordings" in one_line_error(err)


@pytest.mark.parametrize(("flags", "message"), [
    (["--hours", "nan"], "--hours must be a positive number of hours, got nan"),
    (["--hours", "0"], "--hours must be a positive number of hours, got 0.0"),
    (["--sample-rates", "0"], "--sample-rates must be at least 8000 Hz each, got 0"),
    (["--workers", "-2"], "--workers takes a number of processes (0: one per core) of at least 0, got -2"),
])
def test_synth_flags_are_checked_before_planning(flags: list[str], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    code, _, err = run_cli(["data", "synth", "--out", str(out), "--languages", "it", *flags], capsys)
    assert code == 2 and message in one_line_error(err)  # no "planning ..." line before it
    assert not out.exists()


def test_synth_stops_its_workers_on_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a render with several workers stops them: the command used to wait for every
    queued chunk (or forever, for a chunk whose renderer died of the Ctrl-C)."""
    import tqdm

    from voxkit.data.synth import build_corpus, plan_corpus

    plans = plan_corpus(["it"], 0.02, 4)

    class CtrlC(tqdm.tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            raise KeyboardInterrupt

    monkeypatch.setattr(tqdm, "tqdm", CtrlC)
    out = tmp_path / "corpus"
    with pytest.raises(KeyboardInterrupt):
        build_corpus(str(out), ["it"], 0.02, seed=4, workers=2, chunk_size=1, progress=False, plans=plans)
    assert not multiprocessing.active_children()
    rendered = sum(len(p.read_text().splitlines()) for p in (out / "shards").glob("*.jsonl"))
    assert rendered < len(plans)  # not every chunk was rendered before the command stopped


# ---------------------------------------------------------------------------- voxkit export


@pytest.mark.parametrize("kind", ["asr", "codec", "chat", "tts"])
def test_export_says_what_a_checkpoint_argument_lacks(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    a_file = tmp_path / "recipe.toml"
    a_file.write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    for checkpoint, message in ((run, "holds no checkpoint yet (checkpoints/ is empty)"),
                                (tmp_path / "nope", "not found: give a training checkpoint"),
                                (a_file, "is a file: give a training checkpoint"),
                                (empty, "holds no checkpoint (no weights, no checkpoints/ folder)")):
        code, _, err = run_cli(["export", kind, str(checkpoint), "--out", str(tmp_path / "model")], capsys)
        assert code == 2 and f"{checkpoint} {message}" in one_line_error(err), err
    assert not (tmp_path / "model").exists()


def test_export_names_a_missing_tokenizer_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", str(_recipe(tmp_path)), f"train.out_dir={out}", "train.max_steps=2"], capsys)[0] == 0
    code, _, err = run_cli(["export", "asr", str(out), "--tokenizer", str(tmp_path / "vocab"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and f"--tokenizer {tmp_path / 'vocab'}: no such folder" in one_line_error(err)


def test_data_tts_names_a_missing_codec_and_makes_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path)
    out = tmp_path / "codes"
    code, _, err = run_cli(["data", "tts", str(manifest), "--codec", str(tmp_path / "codec"), "--out", str(out)], capsys)
    assert code == 2 and f"--codec {tmp_path / 'codec'}: no such folder" in one_line_error(err)
    assert not out.exists()


def test_an_export_over_an_older_one_is_read_with_its_own_tokenizer(tmp_path: Path) -> None:
    """Tokenizer files an earlier export left in the folder took precedence over the new export's
    (a subset's vocab_subset.json, a published tekken.json), so the folder decoded other tokens."""
    from asr_helpers import tiny_model
    from voxkit.asr.bundle import save_bundle
    from voxkit.subset_tokenizer import SubsetTokenizer, load_folder_tokenizer
    from voxkit.tokenizer import ByteTokenizer, TekkenTokenizer

    folder = tmp_path / "model"
    subset = SubsetTokenizer.from_texts(TekkenTokenizer.shipped(), ["hello", "world"] * 5, 300, 1)
    save_bundle(tiny_model(), subset, folder)
    assert isinstance(load_folder_tokenizer(folder), SubsetTokenizer)
    (folder / "tekken.json").write_text("{}")  # as a published folder has one
    save_bundle(tiny_model(), ByteTokenizer(), folder)
    assert isinstance(load_folder_tokenizer(folder), ByteTokenizer)
    save_bundle(tiny_model(), subset, folder)
    save_bundle(tiny_model(), TekkenTokenizer.shipped(), folder)
    assert isinstance(load_folder_tokenizer(folder), TekkenTokenizer)


def test_data_check_applies_the_readers_rules(tmp_path: Path) -> None:
    """`voxkit data check` passed rows the readers refuse (word times as text), and an audio of 5
    was "audio file missing: .../5"; the readers' message pointed at data check for eval manifests,
    which data check refuses whole (they have no durations)."""
    from voxkit.data.manifest import check_manifest, read_manifest

    good = {"audio": "a.wav", "text": "hi there", "duration": 1.0}
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    rows = [
        {**good, "words": [{"word": "hi", "start": "0.0", "end": 0.4}, {"word": "there", "start": 0.5, "end": 0.9}]},
        {**good, "audio": 5},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = check_manifest(manifest)
    assert [reason for _, reason in report.problems] == [
        "words entries need a word (text), and start and end (numbers of seconds)",
        "audio must be the path of a file, got 5",
    ]
    with pytest.raises(Exception, match=r"m\.jsonl:1: words must be a list .*lists every bad row\)$"):
        read_manifest(manifest, words=True)
    manifest.write_text(json.dumps({"audio": 5, "text": "hi"}) + "\n")
    with pytest.raises(Exception, match=r"m\.jsonl:1: audio must be the path of a file, got 5$"):
        read_manifest(manifest, required=("audio", "text"))


def test_a_transcript_of_punctuation_only_is_empty_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reference of "..." passed the evaluations' check and then stopped `eval tts` mid-run
    ("nothing to say"); for `eval asr` it vanished from the WER like an empty one."""
    from voxkit.data.manifest import check_row

    row = {"audio": "a.wav", "text": "…", "duration": 1.0}
    assert "empty text" in check_row(row, str(tmp_path))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "hello"}) + "\n" + json.dumps({"audio": "b.wav", "text": "..."}) + "\n")
    code, _, err = run_cli(["eval", "asr", str(manifest), "--model", str(tmp_path / "none")], capsys)
    assert code != 0 and one_line_error(err).endswith(f"{manifest}:2: empty text: 1 of 2 rows have no reference transcript "
                                                      "to score against (give every row its text, or leave those rows out)")
