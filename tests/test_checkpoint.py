"""Checkpoint folders: round trips in both layouts and clear errors for malformed folders."""

from __future__ import annotations

import json
import shutil
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


def test_average_folders_refuses_other_models(tmp_path: Path) -> None:
    from voxkit.checkpoint import average_folders

    save_transformer(Transformer(ARGS), tmp_path / "a", layout="hf")
    other = TransformerArgs(**(ARGS.to_dict() | {"hidden_dim": 96}))
    save_transformer(Transformer(other), tmp_path / "b", layout="hf")
    with pytest.raises(CheckpointError, match="not the same model"):
        average_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "avg")
    with pytest.raises(CheckpointError, match="at least one"):
        average_folders([], tmp_path / "avg")
