"""Checkpoint folders: round trips in both layouts, training checkpoints, atomic writes, clear errors for malformed folders."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from voxkit.errors import CheckpointError
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.loading import load_transformer, save_transformer

ARGS = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=50, sliding_window=16)


@pytest.fixture
def native(tmp_path: Path) -> Path:
    model = Transformer(ARGS)
    save_transformer(model, tmp_path / "native", layout="native")
    return tmp_path / "native"


@pytest.mark.parametrize("layout", ["native", "hf"])
def test_save_load_round_trip(layout: str, tmp_path: Path) -> None:
    model = Transformer(ARGS).eval()
    save_transformer(model, tmp_path / layout, layout=layout)  # type: ignore[arg-type]
    loaded = load_transformer(tmp_path / layout)
    # HF configs always spell out the RoPE base and a maximum length; native keeps what it was given.
    spelled_out = {} if layout == "native" else {"max_seq_len": 32768, "rope_theta": 10000.0}
    assert loaded.args.to_dict() == ARGS.to_dict() | spelled_out
    tokens = torch.randint(0, 50, (1, 20))
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))


def test_unknown_params_keys_survive_round_trip(native: Path, tmp_path: Path) -> None:
    params = json.loads((native / "params.json").read_text())
    params["quantization"] = {"note": "kept verbatim"}
    (native / "params.json").write_text(json.dumps(params))
    model = load_transformer(native)
    save_transformer(model, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "params.json").read_text())["quantization"] == {"note": "kept verbatim"}


def test_sharded_hf_folder_loads(tmp_path: Path) -> None:
    from voxkit.checkpoint import write_folder
    from voxkit.lm.convert import args_to_hf_config, native_to_hf_state

    model = Transformer(ARGS).eval()
    write_folder(tmp_path, "hf", args_to_hf_config(ARGS), native_to_hf_state(model.state_dict(), ARGS), max_shard_bytes=4000)
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    tokens = torch.randint(0, 50, (1, 9))
    with torch.no_grad():
        assert torch.equal(load_transformer(tmp_path)(tokens), model(tokens))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_transformer(tmp_path / "nope")


def test_missing_params_json(native: Path) -> None:
    (native / "params.json").unlink()
    with pytest.raises(CheckpointError, match="neither params.json nor config.json"):
        load_transformer(native)


def test_pickle_only_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text(json.dumps(ARGS.to_dict()))
    torch.save(Transformer(ARGS).state_dict(), tmp_path / "consolidated.pth")
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_transformer(tmp_path)


def test_wrong_shapes_are_named(native: Path) -> None:
    params = json.loads((native / "params.json").read_text())
    params["hidden_dim"] = 72
    (native / "params.json").write_text(json.dumps(params))
    with pytest.raises(CheckpointError, match=r"wrong shapes: layers\.0\.feed_forward\.w1\.weight"):
        load_transformer(native)


def test_extra_and_missing_keys_are_named(native: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(native / "consolidated.safetensors"))
    state["layers.0.attention.extra.weight"] = torch.zeros(3)
    del state["norm.weight"]
    save_file(state, str(native / "consolidated.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_transformer(native)
    assert "missing keys: norm.weight" in str(err.value)
    assert "unexpected keys: layers.0.attention.extra.weight" in str(err.value)


def test_corrupt_weights_and_json(native: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(native, broken)
    (broken / "consolidated.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_transformer(broken)
    (native / "params.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_transformer(native)


def test_unsupported_hf_model_type(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not supported"):
        load_transformer(tmp_path)


def test_average_folders_is_the_elementwise_mean(tmp_path: Path) -> None:
    from voxkit.checkpoint import average_folders

    models = [Transformer(ARGS).eval() for _ in range(3)]
    for i, m in enumerate(models):
        save_transformer(m, tmp_path / f"c{i}", layout="hf")
    (tmp_path / "c0" / "recipe.json").write_text('{"lr": 1}')
    out = average_folders([tmp_path / f"c{i}" for i in range(3)], tmp_path / "avg")
    avg = load_transformer(out)
    states = [m.state_dict() for m in models]
    for key, value in avg.state_dict().items():
        expected = sum(s[key].double() for s in states) / 3
        assert torch.allclose(value.double(), expected, atol=1e-7), key
    assert json.loads((out / "recipe.json").read_text()) == {"lr": 1}


def test_average_folders_takes_the_latest_counter_and_refuses_other_integer_tables(tmp_path: Path) -> None:
    """A training model's step counter differs between any two checkpoints of its run (the codec's
    does): the average keeps the latest step; an integer table that differs is still refused."""
    from voxkit.checkpoint import average_folders, read_tensors, weight_files, write_folder

    config = {"dim": 4}
    for i, step in enumerate((300, 500, 400)):
        write_folder(tmp_path / f"c{i}", "native", config, {"w": torch.full((2,), float(i)), "step": torch.tensor(step),
                                                            "table": torch.arange(3)})
    out = average_folders([tmp_path / f"c{i}" for i in range(3)], tmp_path / "avg")
    mean = read_tensors(weight_files(out, "native"))
    assert mean["step"].item() == 500 and mean["step"].dtype == torch.long
    assert torch.equal(mean["w"], torch.full((2,), 1.0)) and torch.equal(mean["table"], torch.arange(3))
    write_folder(tmp_path / "odd", "native", config, {"w": torch.zeros(2), "step": torch.tensor(1), "table": torch.arange(1, 4)})
    with pytest.raises(CheckpointError, match="integer tensor table differs"):
        average_folders([tmp_path / "c0", tmp_path / "odd"], tmp_path / "avg2")


def test_average_folders_refuses_other_models(tmp_path: Path) -> None:
    from voxkit.checkpoint import average_folders

    save_transformer(Transformer(ARGS), tmp_path / "a", layout="hf")
    other = TransformerArgs(**(ARGS.to_dict() | {"hidden_dim": 96}))
    save_transformer(Transformer(other), tmp_path / "b", layout="hf")
    with pytest.raises(CheckpointError, match="not the same model"):
        average_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "avg")
    with pytest.raises(CheckpointError, match="at least one"):
        average_folders([], tmp_path / "avg")


# ------------------------------------------------------------------------ training checkpoints


def _training_run(project: Path, tokenizer: str) -> tuple[Path, torch.nn.Module]:
    """A checkpoint as ``voxkit train`` writes it from ``project``: runs/tiny/checkpoints/step_N + recipe."""
    from asr_helpers import tiny_model
    from voxkit.train.checkpointing import save_checkpoint

    model = tiny_model()
    model.enable_ctc_head()  # a training-only head, as the shipped recipe has
    recipe = {"model": {"name": "realtime_recognizer"}, "data": {"tokenizer": tokenizer}, "train": {"out_dir": "runs/tiny"}}
    return save_checkpoint(project / "runs" / "tiny", 5, model, {"optimizer": {}}, recipe), model


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    tok = tmp_path / "project" / "tok"
    tok.mkdir(parents=True)
    (tok / "params.json").write_text(json.dumps({"tokenizer": "byte"}))  # a tokenizer folder naming the byte tokenizer
    return _training_run(tmp_path / "project", "tok")


def test_training_checkpoint_is_its_own_kind(run: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    from voxkit.checkpoint import CHECKPOINT_MARKER, detect_layout, read_config, training_model, write_folder

    ckpt, model = run
    assert detect_layout(ckpt) == "training"  # marked in its config, and it has its train state
    assert json.loads((ckpt / "config.json").read_text())[CHECKPOINT_MARKER] == {"kind": "training", "model": "realtime_recognizer"}
    assert training_model(ckpt) == "realtime_recognizer"
    old = tmp_path / "old"  # a checkpoint of an older run: no marker, recognised by its train state and recipe
    shutil.copytree(ckpt, old)
    config = json.loads((old / "config.json").read_text())
    del config[CHECKPOINT_MARKER]
    (old / "config.json").write_text(json.dumps(config))
    assert detect_layout(old) == "training" and training_model(old) == "realtime_recognizer"
    bare = tmp_path / "bare"  # weights + params-style config only (an averaged or grown folder of an older run)
    bare.mkdir()
    shutil.copy(old / "config.json", bare / "config.json")
    shutil.copy(old / "model.safetensors", bare / "model.safetensors")
    assert detect_layout(bare) == "training" and training_model(bare) is None
    marked = write_folder(tmp_path / "marked", "training", {"note": "no params"}, {"w": torch.ones(2)}, model="realtime_recognizer")
    assert json.loads((marked / "config.json").read_text())[CHECKPOINT_MARKER] == {"kind": "training", "model": "realtime_recognizer"}
    assert detect_layout(marked) == "training" and training_model(marked) == "realtime_recognizer"
    assert read_config(marked, "training") == {"note": "no params"}  # the marker is not part of the model config
    save_transformer(Transformer(ARGS), tmp_path / "hf", layout="hf")
    assert detect_layout(tmp_path / "hf") == "hf"


def test_training_checkpoint_loads_as_a_recogniser(run: tuple[Path, torch.nn.Module]) -> None:
    from voxkit.asr.checkpoint import load_recognizer

    ckpt, model = run
    loaded = load_recognizer(ckpt)
    trained = model.state_dict()
    assert not hasattr(loaded, "ctc_head") or loaded.ctc_head is None
    assert set(loaded.state_dict()) == {k for k in trained if not k.startswith("ctc_head.")}
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_bundle_of_a_training_checkpoint_uses_the_recorded_tokenizer(
    run: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxkit.asr.bundle import load_bundle
    from voxkit.tokenizer import ByteTokenizer

    ckpt, _ = run
    monkeypatch.chdir(tmp_path)  # not where training ran: the recipe's relative folder is found from the checkpoint's path
    bundle = load_bundle(ckpt)
    assert isinstance(bundle.tokenizer, ByteTokenizer)


def test_training_checkpoint_without_its_tokenizer_names_the_export_command(tmp_path: Path) -> None:
    from voxkit.asr.bundle import load_bundle

    ckpt, _ = _training_run(tmp_path, "gone/vocab")
    with pytest.raises(CheckpointError) as err:
        load_bundle(ckpt)
    message = str(err.value)
    assert "\n" not in message
    assert f"voxkit export asr {ckpt} --out DIR --tokenizer" in message and "'gone/vocab'" in message


def test_export_without_tokenizer_takes_the_recorded_one(
    run: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxkit.asr.bundle import load_bundle
    from voxkit.checkpoint import detect_layout
    from voxkit.cli.main import main
    from voxkit.tokenizer import ByteTokenizer

    ckpt, model = run
    out = tmp_path / "exported"
    assert main(["export", "asr", str(ckpt.parent.parent), "--out", str(out)]) == 0  # a run folder: its latest checkpoint
    assert detect_layout(out) == "native"
    bundle = load_bundle(out, keep_16bit=False)
    assert isinstance(bundle.tokenizer, ByteTokenizer)  # named in params.json, so the folder stands alone
    assert torch.equal(bundle.model.encoder.conv_layers[0].conv.weight, model.encoder.conv_layers[0].conv.weight)
    capsys.readouterr()
    assert main(["export", "asr", str(out), "--out", str(tmp_path / "again")]) == 2
    assert "not a training checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("into", ["run", "checkpoint"])
def test_export_into_the_run_or_its_checkpoint_is_refused(
    run: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str], into: str
) -> None:
    """The exported params.json and weights would sit among the run's files or the checkpoint's."""
    from voxkit.cli.main import main

    ckpt, _ = run
    folder = ckpt if into == "checkpoint" else ckpt.parent.parent
    before = sorted(p.name for p in folder.iterdir())
    capsys.readouterr()
    assert main(["export", "asr", str(ckpt.parent.parent), "--out", str(folder)]) == 2
    assert f"--out {folder} is an input folder: write to another folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_training_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    from voxkit.asr.checkpoint import load_recognizer
    from voxkit.checkpoint import write_folder

    folder = write_folder(tmp_path / "lm", "training", ARGS.to_dict(), Transformer(ARGS).state_dict(), model="text_lm")
    with pytest.raises(CheckpointError, match="training checkpoint of a 'text_lm' model, not of a recogniser"):
        load_recognizer(folder)


def test_average_of_training_checkpoints_stays_one(tmp_path: Path) -> None:
    from voxkit.asr.bundle import load_bundle
    from voxkit.checkpoint import average_folders, detect_layout, training_model

    first, _ = _training_run(tmp_path / "a", "byte")
    second, _ = _training_run(tmp_path / "b", "byte")
    out = average_folders([first, second], tmp_path / "avg")
    assert detect_layout(out) == "training" and training_model(out) == "realtime_recognizer"  # marked now, no train state
    assert json.loads((out / "recipe.json").read_text())["data"] == {"tokenizer": "byte"}
    assert load_bundle(out).model.args.to_params() == load_bundle(first).model.args.to_params()  # loads like any checkpoint


# ------------------------------------------------------------------------------- atomic writes


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    from voxkit.fileio import atomic_write

    target = tmp_path / "a.json"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_atomic_folder_leaves_no_temporary_and_success_replaces(tmp_path: Path) -> None:
    from voxkit.fileio import atomic_folder

    final = tmp_path / "step_1"
    with pytest.raises(RuntimeError), atomic_folder(final) as tmp:
        (tmp / "w").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    for content in ("first", "second"):
        with atomic_folder(final) as tmp:
            (tmp / "w").write_text(content)
    assert (final / "w").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["step_1"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_results_follow_the_umask(tmp_path: Path, umask: int) -> None:
    from safetensors.torch import save_file

    from voxkit.checkpoint import write_folder, write_safetensors
    from voxkit.fileio import atomic_folder

    old = os.umask(umask)
    try:
        folder = write_folder(tmp_path / "m", "native", ARGS.to_dict(), {"w": torch.ones(2)})
        with atomic_folder(tmp_path / "step_1") as tmp:
            write_safetensors(tmp / "model.safetensors", {"w": torch.ones(2)})
            save_file({"w": torch.ones(2)}, str(tmp / "direct.safetensors"))  # as the trainer writes its weights
    finally:
        os.umask(old)
    for path in (folder / "params.json", folder / "consolidated.safetensors", *(tmp_path / "step_1").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path  # 0644 for others to read, not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "step_1").stat().st_mode) == 0o777 & ~umask
    if umask == 0o022:
        assert (folder / "params.json").stat().st_mode & 0o044 == 0o044
