"""Checkpoint folders as users meet them: transformers' variants, trimmed configs, broken downloads.

Each folder is built here from tiny random models (transformers' ``save_pretrained`` or voxkit's
own writers) and then damaged or varied the way real folders are: a shard the index misplaces, a
config.json that leaves fields to their defaults, a Ministral config mixing windowed and full
layers, a repository holding both published layouts. Loading must either reproduce transformers'
logits or stop with one line that names the file or key at fault.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers  # noqa: E402  (a declared test dependency: never skipped)
from safetensors.torch import load_file, save_file

from voxkit.errors import CheckpointError
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.convert import hf_config_to_args
from voxkit.lm.loading import load_transformer, save_transformer

TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=128)


def _mistral(folder: Path, shard: str | None = None, **extra: Any) -> torch.nn.Module:
    """A tiny random MistralForCausalLM saved to ``folder`` (sharded when ``shard`` gives a size)."""
    model = transformers.MistralForCausalLM(transformers.MistralConfig(**{**TINY, **extra})).eval()
    model.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    return model


def _max_diff(hf: torch.nn.Module, folder: Path, length: int = 29) -> float:
    tokens = torch.randint(0, TINY["vocab_size"], (2, length))
    with torch.no_grad():
        return (load_transformer(folder)(tokens) - hf(tokens).logits).abs().max().item()  # [2, T, V]


def _one_line_error(folder: Path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_transformer(folder)
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------ parity


def test_sharded_tied_folder_with_its_own_head_dim_matches_transformers(tmp_path: Path) -> None:
    """Guard: shards, tied embeddings (no lm_head stored) and head_dim != hidden / heads at once."""
    hf = _mistral(tmp_path / "hf", shard="20KB", tie_word_embeddings=True, head_dim=24, sliding_window=None)
    assert len(list((tmp_path / "hf").glob("model-*.safetensors"))) > 1
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    assert "lm_head.weight" not in index["weight_map"]
    assert _max_diff(hf, tmp_path / "hf") <= 1e-4


def test_ministral_layer_types_mix_windowed_and_full_layers(tmp_path: Path) -> None:
    """Ministral's layer_types give some layers a window and others full attention; reading the
    window as every layer's changed the full layers' output."""
    config = transformers.MinistralConfig(**{**TINY, "num_hidden_layers": 3}, sliding_window=7,
                                          layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    hf = transformers.MinistralForCausalLM(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    loaded = load_transformer(tmp_path / "hf")
    assert loaded.args.sliding_window == [7, None, 7]
    assert _max_diff(hf, tmp_path / "hf") <= 1e-4  # 29 tokens: past the window
    save_transformer(loaded, tmp_path / "native", layout="native")  # params.json: [7, null, 7]
    assert _max_diff(hf, tmp_path / "native") <= 1e-4


TRIMMED = {  # model_type -> (config class, sizes that fit the class's defaults, fields the file leaves out)
    "mistral": ("MistralConfig", {"num_attention_heads": 8}, ["num_key_value_heads", "rms_norm_eps", "sliding_window",
                                                              "rope_parameters", "max_position_embeddings", "head_dim"]),
    "mixtral": ("MixtralConfig", {"num_attention_heads": 8},
                ["num_key_value_heads", "rms_norm_eps", "rope_parameters", "num_local_experts", "num_experts_per_tok"]),
    "ministral3": ("Ministral3Config", {"num_attention_heads": 8}, ["num_key_value_heads", "head_dim", "rope_parameters"]),
    "ministral": ("MinistralConfig", {"num_attention_heads": 8}, ["num_key_value_heads", "rms_norm_eps", "sliding_window",
                                                                  "rope_parameters"]),
}


@pytest.mark.parametrize("model_type", sorted(TRIMMED))
def test_fields_a_config_leaves_out_take_transformers_defaults(model_type: str) -> None:
    """A config.json without some fields is the model transformers' config class completes it to."""
    cls, sizes, left_out = TRIMMED[model_type]
    trimmed = {"model_type": model_type, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
               "vocab_size": 128, **sizes}
    assert not set(left_out) & trimmed.keys()
    completed = getattr(transformers, cls)(**{k: v for k, v in trimmed.items() if k != "model_type"}).to_dict()
    assert hf_config_to_args(trimmed).to_dict() == hf_config_to_args(completed).to_dict()


def test_trimmed_mixtral_config_matches_transformers_logits(tmp_path: Path) -> None:
    """Mixtral's RoPE base defaults to 1e6, not the 1e4 of Mistral's class."""
    config = transformers.MixtralConfig(**{**TINY, "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 8},
                                        num_local_experts=4, num_experts_per_tok=2)
    transformers.MixtralForCausalLM(config).save_pretrained(tmp_path / "hf")
    file = tmp_path / "hf" / "config.json"
    data = json.loads(file.read_text())
    for key in ("rope_parameters", "rope_theta", "num_key_value_heads"):
        data.pop(key, None)
    file.write_text(json.dumps(data))
    hf = transformers.MixtralForCausalLM.from_pretrained(tmp_path / "hf").eval()  # reads the trimmed file
    assert _max_diff(hf, tmp_path / "hf") <= 1e-4


def test_another_activation_is_refused_not_read_as_silu(tmp_path: Path) -> None:
    _mistral(tmp_path / "hf", hidden_act="gelu")
    assert "hidden_act 'gelu'" in _one_line_error(tmp_path / "hf")


def test_voxtral_text_config_leaves_fields_to_voxtral_defaults() -> None:
    """transformers' Voxtral completes a text_config with its published text model's values (eight
    key/value heads, heads of 128, a RoPE base of 1e8), not with Llama's or Mistral's."""
    from voxkit.chat.checkpoint import hf_config_to_args as chat_args

    text = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8}
    audio = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, "num_mel_bins": 16,
             "max_source_positions": 20}
    ref = transformers.VoxtralConfig(text_config=dict(text), audio_config=dict(audio)).text_config
    decoder = chat_args({"model_type": "voxtral", "text_config": text, "audio_config": audio}).decoder
    assert (decoder.norm_eps, decoder.n_kv_heads, decoder.head_dim, decoder.theta, decoder.max_seq_len) == (
        ref.rms_norm_eps, ref.num_key_value_heads, ref.head_dim, ref.rope_parameters["rope_theta"], ref.max_position_embeddings)


def test_voxtral_realtime_config_leaves_fields_to_its_defaults() -> None:
    """transformers' VoxtralRealtime completes both sub-configs with the published model's values:
    heads of 128 and 64, windows of 8192 and 750 positions."""
    from voxkit.asr.checkpoint import hf_config_to_args as recogniser_args

    text = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8}
    audio = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8, "num_mel_bins": 16}
    completed = transformers.VoxtralRealtimeConfig(text_config=dict(text), audio_config=dict(audio)).to_dict()
    trimmed = recogniser_args({"text_config": text, "audio_config": audio})
    assert trimmed == recogniser_args(completed)
    assert (trimmed.decoder.head_dim, trimmed.decoder.sliding_window) == (completed["text_config"]["head_dim"],
                                                                          completed["text_config"]["sliding_window"])
    assert (trimmed.encoder.head_dim, trimmed.encoder.sliding_window) == (completed["audio_config"]["head_dim"],
                                                                          completed["audio_config"]["sliding_window"])


# ------------------------------------------------------------------------------ shards and index


def _sharded(tmp_path: Path) -> Path:
    _mistral(tmp_path / "hf", shard="20KB")
    return tmp_path / "hf"


def _edit_index(folder: Path, edit: Any) -> None:
    file = folder / "model.safetensors.index.json"
    file.write_text(json.dumps(edit(json.loads(file.read_text()))))


def test_index_that_misplaces_a_tensor_is_named(tmp_path: Path) -> None:
    folder = _sharded(tmp_path)

    def misplace(index: dict[str, Any]) -> dict[str, Any]:
        shard = index["weight_map"]["model.norm.weight"]
        index["weight_map"]["model.norm.weight"] = next(s for s in index["weight_map"].values() if s != shard)
        return index

    _edit_index(folder, misplace)
    message = _one_line_error(folder)
    assert "model.safetensors.index.json places model.norm.weight in" in message


def test_index_that_lists_a_tensor_no_shard_holds_is_named(tmp_path: Path) -> None:
    folder = _sharded(tmp_path)

    def add(index: dict[str, Any]) -> dict[str, Any]:
        index["weight_map"]["model.layers.0.self_attn.q_norm.weight"] = next(iter(index["weight_map"].values()))
        return index

    _edit_index(folder, add)
    assert "places model.layers.0.self_attn.q_norm.weight in" in _one_line_error(folder)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not readable JSON"),
        ("[]", "has no weight_map"),
        ('{"weight_map": {"model.norm.weight": 3}}', "not a file name"),
        ('{"weight_map": {"model.norm.weight": "../other/model.safetensors"}}', "outside the model folder"),
    ],
)
def test_malformed_index_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    folder = _sharded(tmp_path)
    (tmp_path / "other").mkdir()
    save_file({"model.norm.weight": torch.ones(64)}, str(tmp_path / "other" / "model.safetensors"))
    (folder / "model.safetensors.index.json").write_text(text)
    assert expected in _one_line_error(folder)


def test_hub_cache_layout_of_symlinked_shards_loads(tmp_path: Path) -> None:
    """Guard: the hub cache keeps files in blobs/ and links them from snapshots/<rev>/."""
    hf = _mistral(tmp_path / "hf", shard="20KB")
    blobs, snapshot = tmp_path / "cache" / "blobs", tmp_path / "cache" / "snapshots" / "rev"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted((tmp_path / "hf").iterdir())):
        shutil.copy(file, blobs / f"blob{i}")
        os.symlink(os.path.relpath(blobs / f"blob{i}", snapshot), snapshot / file.name)
    assert _max_diff(hf, snapshot) <= 1e-4
    first = sorted(snapshot.glob("model-*.safetensors"))[0]
    first.resolve().unlink()  # an interrupted download: the link is there, its blob is not
    assert f"lists shards that are missing: {first.name}" in _one_line_error(snapshot)


# ------------------------------------------------------------------------------ tensors


def test_tensor_problems_are_named_in_transformers_names(tmp_path: Path) -> None:
    _mistral(tmp_path / "hf")
    file = tmp_path / "hf" / "model.safetensors"
    state = load_file(str(file))
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(60, 64)  # rows that are no whole number of heads
    save_file(state, str(file))
    message = _one_line_error(tmp_path / "hf")
    assert "missing keys: model.layers.1.mlp.up_proj.weight" in message
    assert "model.layers.0.self_attn.q_proj.weight: checkpoint (60, 64) vs model (64, 64)" in message


def test_stored_rotary_frequencies_are_ignored_as_transformers_does(tmp_path: Path) -> None:
    hf = _mistral(tmp_path / "hf")
    file = tmp_path / "hf" / "model.safetensors"
    state = load_file(str(file))
    for i in range(TINY["num_hidden_layers"]):
        state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.ones(8)  # as older transformers saved them
    save_file(state, str(file))
    assert _max_diff(hf, tmp_path / "hf") <= 1e-4


def test_bfloat16_folder_keeps_its_dtype_unless_asked(tmp_path: Path) -> None:
    """Guard: dtype None keeps the stored dtype; dtype=float32 widens it, exactly."""
    hf = _mistral(tmp_path / "fp32")
    transformers.MistralForCausalLM.from_pretrained(tmp_path / "fp32", dtype=torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert load_transformer(tmp_path / "bf16").tok_embeddings.weight.dtype == torch.bfloat16
    widened = load_transformer(tmp_path / "bf16", dtype=torch.float32)
    assert torch.equal(widened.tok_embeddings.weight, hf.model.embed_tokens.weight.to(torch.bfloat16).float())


# ------------------------------------------------------------------------------ folders and configs


def test_repository_with_both_configs_but_only_transformers_weights(tmp_path: Path) -> None:
    """Published repositories hold params.json beside config.json; with only the transformers weights
    downloaded, the folder is a transformers folder."""
    hf = _mistral(tmp_path / "hf")
    save_transformer(load_transformer(tmp_path / "hf"), tmp_path / "native", layout="native")
    shutil.copy(tmp_path / "native" / "params.json", tmp_path / "hf" / "params.json")
    assert _max_diff(hf, tmp_path / "hf") <= 1e-4


def test_task_head_folder_is_refused_by_its_architecture(tmp_path: Path) -> None:
    config = transformers.MistralConfig(**TINY, num_labels=3, pad_token_id=0)
    transformers.MistralForSequenceClassification(config).save_pretrained(tmp_path / "hf")
    message = _one_line_error(tmp_path / "hf")
    assert "MistralForSequenceClassification, not a causal language model" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"num_key_value_heads": 3}, "multiple of n_kv_heads"),
        ({"hidden_size": "64"}, "hidden_size must be a positive integer"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6}}, "lacks required field 'factor'"),
        ({"rms_norm_eps": "1e-5"}, "rms_norm_eps must be a positive number"),
        ({"rms_norm_eps": None}, "rms_norm_eps must be a positive number"),
        ({"sliding_window": "4096"}, "sliding_window must be a positive integer or null"),
        ({"sliding_window": 0}, "sliding_window must be a positive integer or null"),
        ({"tie_word_embeddings": "false"}, "tie_word_embeddings must be true or false"),
    ],
)
def test_config_json_mistakes_are_one_line(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    _mistral(tmp_path / "hf")
    file = tmp_path / "hf" / "config.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | change))
    assert expected in _one_line_error(tmp_path / "hf")


@pytest.mark.parametrize(("change", "expected"), [({"num_experts_per_tok": 5}, "from 1 to num_local_experts (4), got 5"),
                                               ({"num_experts_per_tok": "2"}, "got '2'")])
def test_mixtral_expert_counts_that_build_no_model_are_one_line(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    config = transformers.MixtralConfig(**TINY, num_local_experts=4, num_experts_per_tok=2)
    transformers.MixtralForCausalLM(config).save_pretrained(tmp_path / "hf")
    file = tmp_path / "hf" / "config.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | change))
    assert expected in _one_line_error(tmp_path / "hf")


def test_ministral3_config_with_a_top_level_rope_base_keeps_its_yarn_section(tmp_path: Path) -> None:
    """Transformers' Ministral-3 class ignores a top-level rope_theta (and a null rope_parameters) and
    fills in its YaRN section; reading the older spelling as plain RoPE built another model."""
    config = transformers.Ministral3Config(**TINY)
    transformers.Ministral3ForCausalLM(config).save_pretrained(tmp_path / "hf")
    file = tmp_path / "hf" / "config.json"
    for change in ({"rope_theta": 5e5}, {"rope_parameters": None, "rope_theta": 5e5}):
        data = {k: v for k, v in json.loads(file.read_text()).items() if k != "rope_parameters"} | change
        file.write_text(json.dumps(data))
        hf = transformers.Ministral3ForCausalLM.from_pretrained(tmp_path / "hf").eval()  # reads the edited file
        args = load_transformer(tmp_path / "hf").args
        assert args.yarn is not None and args.llama_4_scaling is not None, change
        assert _max_diff(hf, tmp_path / "hf", length=40) <= 1e-4, change


def test_params_json_of_a_vision_language_model_is_refused_by_name(tmp_path: Path) -> None:
    """The published Ministral-3 repositories' params.json carries a vision_encoder section: said, not a wall of keys."""
    save_transformer(Transformer(ARGS), tmp_path / "native")
    file = tmp_path / "native" / "params.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | {"vision_encoder": {"hidden_size": 1024}}))
    assert "vision-language model" in _one_line_error(tmp_path / "native")


def test_encoder_body_without_vocabulary_survives_its_round_trip(tmp_path: Path) -> None:
    """vocab_size 0 is an encoder body (TransformerArgs): save_transformer writes it, load_transformer must read it."""
    args = TransformerArgs(dim=32, n_layers=1, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=0)
    model = Transformer(args).eval()
    save_transformer(model, tmp_path / "enc")
    loaded = load_transformer(tmp_path / "enc")
    assert loaded.args.vocab_size == 0
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_ministral_windows_save_back_as_transformers_layer_types(tmp_path: Path) -> None:
    """A model with windowed and full layers is transformers' Ministral: it saves as one, and
    transformers reads the folder as the same model."""
    config = transformers.MinistralConfig(**{**TINY, "num_hidden_layers": 3}, sliding_window=7,
                                          layer_types=["full_attention", "sliding_attention", "full_attention"])
    hf = transformers.MinistralForCausalLM(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    save_transformer(load_transformer(tmp_path / "hf"), tmp_path / "again", layout="hf")
    written = json.loads((tmp_path / "again" / "config.json").read_text())
    assert written["model_type"] == "ministral" and written["sliding_window"] == 7
    assert written["layer_types"] == ["full_attention", "sliding_attention", "full_attention"]
    back = transformers.MinistralForCausalLM.from_pretrained(tmp_path / "again").eval()
    tokens = torch.randint(0, TINY["vocab_size"], (2, 29))
    with torch.no_grad():
        assert (back(tokens).logits - hf(tokens).logits).abs().max().item() <= 1e-5  # [2, T, V]
    two_sizes = Transformer(TransformerArgs(**(ARGS.to_dict() | {"sliding_window": [4, 8]})))
    with pytest.raises(CheckpointError, match="no transformers counterpart"):
        save_transformer(two_sizes, tmp_path / "two", layout="hf")


ARGS = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=50)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"head_dim": None}, "lacks head_dim"),  # None: the key is removed
        ({"norm_eps": None}, "lacks norm_eps"),
        ({"dim": "32"}, "dim must be a positive integer"),
        ({"n_kv_heads": 0}, "n_kv_heads must be a positive integer"),
        ({"moe": [8, 2]}, "moe: expected a table"),
        ({"rope_theta": "1e6"}, "rope_theta: expected a number"),
    ],
)
def test_params_json_mistakes_are_one_line(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    save_transformer(Transformer(ARGS), tmp_path / "native")
    file = tmp_path / "native" / "params.json"
    params = json.loads(file.read_text()) | change
    file.write_text(json.dumps({k: v for k, v in params.items() if v is not None}))
    assert expected in _one_line_error(tmp_path / "native")


def test_unknown_params_keys_still_load(tmp_path: Path) -> None:
    """Guard: keys voxkit does not model (the reference implementation's max_batch_size) are kept, not refused."""
    save_transformer(Transformer(ARGS), tmp_path / "native")
    file = tmp_path / "native" / "params.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | {"max_batch_size": 1, "yarn": None}))
    assert load_transformer(tmp_path / "native").args.extra == {"max_batch_size": 1}


@pytest.mark.parametrize("loader", ["recogniser", "chat"])
def test_voxtral_config_sizes_that_build_no_model_are_one_line(loader: str) -> None:
    from voxkit.asr.checkpoint import hf_config_to_args as recogniser_args
    from voxkit.chat.checkpoint import hf_config_to_args as chat_args

    text = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 3, "head_dim": 16}
    audio = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 16,
             "num_mel_bins": 16, "max_source_positions": 20}
    read = recogniser_args if loader == "recogniser" else chat_args
    with pytest.raises(CheckpointError, match="multiple of n_kv_heads"):
        read({"text_config": text, "audio_config": audio})
    with pytest.raises(CheckpointError):
        read({"text_config": text | {"num_key_value_heads": 2}, "audio_config": audio | {"num_attention_heads": 0}})


# ------------------------------------------------------------------------------ the command line


def test_generate_names_a_file_and_the_command_for_voxtral_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxkit.cli.main import main

    _mistral(tmp_path / "hf")
    assert main(["generate", "--model", str(tmp_path / "hf" / "model.safetensors"), "hi"]) == 2
    assert f"is a file: give the model folder that holds it ({tmp_path / 'hf'})" in capsys.readouterr().err
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "config.json").write_text(json.dumps({"model_type": "voxtral_realtime"}))
    save_file({"w": torch.ones(1)}, str(tmp_path / "rt" / "model.safetensors"))
    assert main(["generate", "--model", str(tmp_path / "rt"), "hi"]) == 2
    err = capsys.readouterr().err
    assert "is a speech recogniser: transcribe with it" in err and err.count("\n") == 1


def test_whisper_folder_with_only_pickle_weights_says_why(tmp_path: Path) -> None:
    """A transformers Whisper folder is read by the chat model's encoder loader, which skips
    detect_layout: its refusal must explain the pickle file as the model loaders do."""
    from voxkit.chat.encoders import load_whisper_encoder

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper", "d_model": 32, "encoder_layers": 1,
                                                      "encoder_attention_heads": 2, "encoder_ffn_dim": 128}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match=r"only pickle weights \(pytorch_model.bin\); voxkit never unpickles"):
        load_whisper_encoder(tmp_path)
