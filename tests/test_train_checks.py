"""``voxkit train`` refuses what cannot train, before the work, and says what it left out.

Each case was a traceback (an empty training set, a CTC weight without the head, cpu_amp with a
dev set), a full-size model built for nothing (no [tasks]), or a silent run on nothing (plain
transcripts without word timings gave text_tokens=0 and a loss).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from asr_helpers import chirp
from tests.cli_helpers import one_line_error, run_cli
from voxkit.tokenizer import ByteTokenizer

LAYERS = "dim = 32\nn_layers = 1\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 2\nhidden_dim = 64\nsliding_window = 16\n"


def _manifest(folder: Path, name: str, seconds: list[float], words: bool = True) -> Path:
    rows = []
    for i, s in enumerate(seconds):
        sf.write(folder / f"{name}{i}.wav", chirp(s, seed=i).numpy(), 16000)
        ws = [{"word": w, "start": 0.2 + 0.4 * k, "end": 0.5 + 0.4 * k} for k, w in enumerate(["one", "two"])]
        row = {"audio": f"{name}{i}.wav", "text": "one two", "language": "en", "duration": s}
        rows.append({**row, "words": ws} if words else row)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    train = _manifest(tmp_path, "train", [1.5, 1.8, 2.0])
    dev = _manifest(tmp_path, "dev", [1.6])
    path = tmp_path / "r.toml"
    path.write_text(
        f'[model]\nname = "realtime_recognizer"\nn_left_pad_tokens = 2\nctc_head = true\n'
        f"[model.encoder]\n{LAYERS}[model.decoder]\n{LAYERS}vocab_size = {ByteTokenizer().vocab_size}\n"
        f'[data]\ntokenizer = "byte"\n[train]\nmax_steps = 2\nprogress = false\nout_dir = "{tmp_path / "run"}"\n'
        f'[tasks.asr]\ntrain = ["{train}"]\ndev = ["{dev}"]\nmax_seconds = 8.0\naugment = false\neval_utterances = 1\n'
    )
    return path


@pytest.mark.parametrize(("overrides", "message"), [
    (["tasks.asr.train=[\"{empty}\"]"], "nothing to train on: the manifests hold no rows"),
    (["tasks.asr.train=[\"{plain}\"]"], "3 without word timings"),
    (["tasks.asr.max_duration=1.0"], "3 over max_duration 1 s"),
    (["tasks.asr.max_seconds=0"], "max_seconds must be a positive number"),
    (["tasks.asr.num_workers=-1"], "num_workers must be >= 0"),
    (["model.ctc_head=false", "tasks.asr.ctc_weight=0.5"], "needs the model's CTC head"),
    (["optim.lr=inf"], "optim.lr must be a finite number > 0"),
    (["data.tokenizer={empty}.d"], "data.tokenizer: model folder not found"),
])
def test_what_cannot_train_is_one_line(recipe: Path, overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = recipe.parent
    (folder / "empty.jsonl").write_text("")
    plain = _manifest(folder, "plain", [1.5, 1.6, 1.7], words=False)
    filled = [o.format(empty=folder / "empty.jsonl", plain=plain) for o in overrides]
    code, _, err = run_cli(["train", str(recipe), *filled], capsys)
    assert code == 2 and message in one_line_error(err)
    assert not (folder / "run" / "checkpoints").exists()


def test_no_tasks_is_refused_before_a_model_is_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default [model] is full size: building it first took minutes and most of the memory."""
    path = tmp_path / "r.toml"
    path.write_text('[model]\nname = "realtime_recognizer"\n[train]\nmax_steps = 1\n')
    code, _, err = run_cli(["train", str(path)], capsys)
    assert code == 2 and "no [tasks.NAME] section" in one_line_error(err)


def test_rows_left_out_are_counted_and_an_empty_dev_set_gives_no_wer(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["train", str(recipe), "tasks.asr.max_duration=1.9"], capsys)
    assert code == 0
    assert "tasks.asr.train: 2 of 3 rows used (1 over max_duration 1.9 s, 0 without word timings)" in err
    assert "eval/asr/wer" in out  # the 1.6 s dev clip is kept
    code, out, err = run_cli(["train", str(recipe), "tasks.asr.max_duration=1.55", "train.out_dir=" + str(recipe.parent / "r2")],
                             capsys)
    assert code == 0 and "tasks.asr.dev: no dev WER" in err and "eval/asr/wer" not in out  # not a 0 % WER


def test_cpu_amp_evaluates_a_dev_set(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bf16 autocast on the CPU trains; the evaluation (streaming caches) runs in float32."""
    code, out, err = run_cli(["train", str(recipe), "train.cpu_amp=true"], capsys)
    assert code == 0 and "eval/asr/wer_480ms=" in out, err


def test_resume_says_what_it_did(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["train", str(recipe), "--stop-at", "0"], capsys)
    assert code == 2 and "--stop-at takes a step of at least 1" in one_line_error(err)
    code, _, err = run_cli(["train", str(recipe), "--resume"], capsys)
    assert code == 0 and "--resume: no checkpoint in" in err
    code, _, err = run_cli(["train", str(recipe), "--resume", "train.max_steps=1"], capsys)
    assert code == 0 and "nothing to train; raise train.max_steps" in err
    code, _, err = run_cli(["train", str(recipe), "--resume", "model.encoder.dim=64", "train.max_steps=4"], capsys)
    line = one_line_error(err.split("\n", 1)[1])  # after the model summary line
    assert code == 2 and "does not fit the model (has the recipe's [model] changed since?): size mismatch" in line and "more)" in line


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    """lr=inf used to run to the end with loss nan (and NaN weights in every checkpoint)."""
    import torch

    from tests.test_train import ToyLM, make_recipe, tiny_model
    from voxkit.errors import VoxkitError
    from voxkit.train.checkpointing import latest_checkpoint
    from voxkit.train.trainer import Trainer

    class NanAfterFour(ToyLM):
        def __init__(self) -> None:
            super().__init__(batches_per_epoch=100)
            self.calls = 0

        def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            self.calls += 1
            loss, metrics = super().loss(model, batch)
            return (loss * float("nan") if self.calls > 4 else loss), metrics

    recipe = make_recipe(tmp_path, max_steps=20, save_every=2, log_every=2)
    trainer = Trainer(recipe, tiny_model(), {"toy": NanAfterFour()}, {"toy": 1.0})
    with pytest.raises(VoxkitError, match=r"diverged at step 6 \(train/.*= nan\)"):
        trainer.fit()
    assert latest_checkpoint(tmp_path).name == "step_00000004"  # step 6's NaN weights were not saved
