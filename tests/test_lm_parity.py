"""The backbone matches transformers' Mistral, Mixtral and Ministral3 on the same weights (fp32).

Each case builds a tiny random transformers model, saves it with ``save_pretrained`` and loads it
into voxkit twice: straight from the HF folder, and from a native folder written by voxkit's
converter (which applies the RoPE row permutation). Both must reproduce the logits to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers  # noqa: E402  (a declared test dependency: never skipped)

from voxkit.lm.loading import load_transformer, save_transformer  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=128)
YARN = {
    "rope_type": "yarn",
    "rope_theta": 1e6,
    "factor": 4.0,
    "original_max_position_embeddings": 8,  # small so that positions cross the llama-4 scaling steps
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "llama_4_scaling_beta": 0.1,
}
CASES = {
    # window 7 < sequence 29: the sliding-window mask matters
    "mistral-swa": (
        "MistralConfig", "MistralForCausalLM", dict(sliding_window=7, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    ),
    "mistral-tied": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=None, tie_word_embeddings=True)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=None)),
    "ministral3": ("Ministral3Config", "Ministral3ForCausalLM", dict(rope_parameters=YARN, max_position_embeddings=32)),
}


def _hf_model(case: str) -> torch.nn.Module:
    config_cls, model_cls, extra = CASES[case]
    config = getattr(transformers, config_cls)(**TINY, **extra)
    return getattr(transformers, model_cls)(config).eval()


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(case: str, tmp_path: Path) -> None:
    hf = _hf_model(case)
    hf.save_pretrained(tmp_path / "hf")
    tokens = torch.randint(0, TINY["vocab_size"], (2, 29))
    with torch.no_grad():
        reference = hf(tokens).logits  # [2, 29, V]

        from_hf = load_transformer(tmp_path / "hf")
        assert (from_hf(tokens) - reference).abs().max().item() <= 1e-4

        save_transformer(from_hf, tmp_path / "native", layout="native")
        assert (tmp_path / "native" / "params.json").exists()
        from_native = load_transformer(tmp_path / "native")
        assert (from_native(tokens) - reference).abs().max().item() <= 1e-4


@pytest.mark.parametrize("case", ["mistral-swa", "mixtral"])
def test_voxkit_hf_export_loads_in_transformers(case: str, tmp_path: Path) -> None:
    hf = _hf_model(case)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_transformer(tmp_path / "hf")
    save_transformer(ours, tmp_path / "export", layout="hf")
    _, model_cls, _ = CASES[case]
    reloaded = getattr(transformers, model_cls).from_pretrained(tmp_path / "export").eval()
    tokens = torch.randint(0, TINY["vocab_size"], (1, 17))
    with torch.no_grad():
        assert (reloaded(tokens).logits - hf(tokens).logits).abs().max().item() <= 1e-5


def test_rope_permutation_round_trip() -> None:
    from voxkit.lm.convert import rope_rows_to_hf, rope_rows_to_native

    w = torch.randn(4 * 16, 64)
    assert torch.equal(rope_rows_to_native(rope_rows_to_hf(w, 4, 16), 4, 16), w)
    assert not torch.equal(rope_rows_to_hf(w, 4, 16), w)
