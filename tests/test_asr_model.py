"""The recogniser matches transformers' VoxtralRealtime and round-trips the published layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers  # noqa: E402  (a declared test dependency: never skipped)

from asr_helpers import chirp, tiny_model
from voxkit.asr.checkpoint import load_recognizer, save_recognizer
from voxkit.asr.features import LogMel
from voxkit.asr.layout import StreamLayout, build_text_stream
from voxkit.errors import CheckpointError
from voxkit.tokenizer import BOS_ID, STREAMING_PAD_ID, STREAMING_WORD_ID


def _hf_model() -> torch.nn.Module:
    cfg = transformers.VoxtralRealtimeConfig(
        audio_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=16,
                          num_mel_bins=16, sliding_window=5, rope_theta=1e6),
        text_config=dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=7),
    )
    model = transformers.VoxtralRealtimeForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # biases and norm gains start at 0 / 1: make them matter
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("delay", [1, 6, 13])
def test_logits_match_transformers(delay: int, tmp_path: Path) -> None:
    hf = _hf_model()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_recognizer(tmp_path / "hf")
    steps = 14  # > both sliding windows (5 encoder frames, 7 decoder steps)
    mel = torch.randn(2, 16, 8 * steps)
    ids = torch.randint(0, 256, (2, steps))
    with torch.no_grad():
        ref = hf(input_ids=ids, input_features=mel, num_delay_tokens=delay).logits
        out = ours(mel, ids, torch.full((2,), float(delay)))
    assert (ref - out).abs().max().item() <= 1e-4
    # ... and after a trip through the published native layout
    save_recognizer(ours, tmp_path / "native")
    with torch.no_grad():
        again = load_recognizer(tmp_path / "native")(mel, ids, torch.full((2,), float(delay)))
    assert (again - ref).abs().max().item() <= 1e-4


def test_decoder_key_prefix_variants_of_transformers_versions_load_alike() -> None:
    """Saved HF folders name the decoder language_model.model.X (transformers 5.24) or
    language_model.model.model.X (5.17 doubles the inner prefix); in memory it is
    model.language_model.X. All three give the same voxkit weights."""
    from voxkit.asr.checkpoint import hf_config_to_args, hf_to_module_state

    hf = _hf_model()
    args = hf_config_to_args(hf.config.to_dict())
    memory = {k: v for k, v in hf.state_dict().items()}
    saved = {re.sub(r"^model\.language_model\.", "language_model.model.", k): v for k, v in memory.items()}
    doubled = {re.sub(r"^language_model\.model\.", "language_model.model.model.", k): v for k, v in saved.items()}
    assert any(k.startswith("language_model.model.model.") for k in doubled)
    ref = hf_to_module_state(memory, args)
    for variant in (saved, doubled):
        got = hf_to_module_state(variant, args)
        assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)


def test_native_layout_key_names_and_params(tmp_path: Path) -> None:
    from safetensors import safe_open

    save_recognizer(tiny_model(), tmp_path)
    with safe_open(str(tmp_path / "consolidated.safetensors"), "pt") as f:
        keys = set(f.keys())
    prefix = "mm_streams_embeddings.embedding_module."
    assert prefix + "whisper_encoder.conv_layers.0.conv.weight" in keys
    assert prefix + "whisper_encoder.conv_layers.1.conv.bias" in keys
    assert prefix + "whisper_encoder.transformer.layers.1.attention.wq.bias" in keys
    assert prefix + "whisper_encoder.transformer.layers.1.attention.wk.bias" not in keys  # no bias on wk
    assert prefix + "whisper_encoder.transformer.layers.0.feed_forward.w2.bias" in keys
    assert prefix + "audio_language_projection.0.weight" in keys
    assert prefix + "tok_embeddings.weight" in keys
    assert "layers.1.ada_rms_norm_t_cond.2.weight" in keys
    assert "output.weight" not in keys  # tied
    params = json.loads((tmp_path / "params.json").read_text())
    enc = params["multimodal"]["whisper_model_args"]["encoder_args"]
    assert params["ada_rms_norm_t_cond"] is True and enc["use_biases"] is True
    assert params["multimodal"]["whisper_model_args"]["downsample_args"]["downsample_factor"] == 4


def test_published_params_without_voxkit_section_use_published_streaming_defaults(tmp_path: Path) -> None:
    model = tiny_model()
    save_recognizer(model, tmp_path)
    params = json.loads((tmp_path / "params.json").read_text())
    del params["voxkit_streaming"]
    (tmp_path / "params.json").write_text(json.dumps(params))
    loaded = load_recognizer(tmp_path)
    assert loaded.args.n_left_pad_tokens == 32 and loaded.args.default_delay_tokens == 6


def test_text_model_folder_is_not_a_recogniser(tmp_path: Path) -> None:
    from voxkit.lm import Transformer, TransformerArgs
    from voxkit.lm.loading import save_transformer

    backbone = TransformerArgs(dim=16, n_layers=1, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=1, vocab_size=10)
    save_transformer(Transformer(backbone), tmp_path)
    with pytest.raises(CheckpointError, match="not a realtime recogniser"):
        load_recognizer(tmp_path)


def test_log_mel_matches_transformers_feature_extractor() -> None:
    extractor = transformers.VoxtralRealtimeFeatureExtractor()
    wav = torch.nn.functional.pad(chirp(1.0), (400, 400))  # silence at both ends, as streams have
    ref = extractor(wav.numpy(), sampling_rate=16000, return_tensors="pt").input_features
    ours = LogMel()(wav[None])
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < 1e-4


def test_text_stream_layout() -> None:
    layout = StreamLayout(left_pad=2, delay=3)
    # word A at 0.00 s (step 0), B at 0.20 s (step 2) but A's tokens still occupy that slot
    seq = build_text_stream([[100, 101, 102], [200]], [0.0, 0.2], num_samples=1280 * 5, layout=layout, right_pad=1)
    first = layout.prompt_length  # 1 + 2 + 3
    assert seq[0] == BOS_ID and seq[1:first] == [STREAMING_PAD_ID] * 5
    assert seq[first : first + 6] == [STREAMING_WORD_ID, 100, 101, 102, STREAMING_WORD_ID, 200]
    assert len(seq) == 1 + 2 + 5 + 3 + 1 + 1
    assert layout.word_start(first + 4) == pytest.approx(0.32)
