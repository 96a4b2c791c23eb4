"""The chat model trains with the shared trainer on instruction files and exports a folder that
AudioChat loads (the imported encoder named, not copied); a recogniser's decoder starts it exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.checkpoint import save_recognizer
from voxkit.asr.model import RealtimeRecognizer
from voxkit.chat.instructions import ChatExample, write_examples
from voxkit.chat.task import decoder_from_recognizer
from voxkit.cli.main import main as cli_main
from voxkit.lm import Transformer, TransformerArgs
from voxkit.tokenizer import ByteTokenizer

RECIPE = """
[model]
name = "audio_chat"
encoder = "{whisper}"
freeze_encoder = true

[model.decoder]
dim = 32
n_layers = 2
head_dim = 8
n_heads = 4
n_kv_heads = 2
hidden_dim = 64
vocab_size = {vocab}
rope_theta = 1e6
max_seq_len = 256

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

[tasks.chat]
train = ["{examples}"]
dev = ["{examples}"]
batch_size = 4
dev_examples = 4
lr_scale = {{ "decoder." = 0.5 }}
"""


def tiny_whisper_folder(folder: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=32, num_mel_bins=8,
                                        max_source_positions=8, vocab_size=60, max_target_positions=16, pad_token_id=0,
                                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    transformers.WhisperModel(config).save_pretrained(folder)
    return folder


def instruction_file(folder: Path) -> Path:
    """Tones of two pitches; the answer names the pitch (learnable from the audio alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    examples = []
    for i in range(16):
        high = i % 2 == 0
        path = folder / f"{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (1200 if high else 200) * t)).astype(np.float32), 16000)
        audio = {"type": "audio", "path": str(path)}
        examples.append(ChatExample("count_words", [{"role": "user", "content": [audio, {"type": "text", "text": "pitch?"}]}],
                                    "high" if high else "low"))
        examples.append(ChatExample("transcribe", [{"role": "user", "content": [audio]}], "tone", language="en"))
    out = folder / "train.jsonl"
    write_examples(out, examples)
    return out


def test_chat_recipe_trains_and_exports_without_the_imported_encoder(tmp_path: Path) -> None:
    from voxkit.chat.api import AudioChat

    whisper = tiny_whisper_folder(tmp_path / "whisper")
    examples = instruction_file(tmp_path / "data")
    out = tmp_path / "run"
    recipe = tmp_path / "chat.toml"
    recipe.write_text(RECIPE.format(whisper=whisper, vocab=ByteTokenizer().vocab_size, steps=30, out=out, examples=examples))
    torch.manual_seed(0)
    assert cli_main(["train", str(recipe)]) == 0
    scalars = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    losses = [r["train/chat/loss"] for r in scalars if "train/chat/loss" in r]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert "eval/chat/dev_loss" in scalars[-1]
    assert cli_main(["export", "chat", str(out), "--out", str(tmp_path / "model"), "--dtype", "float32"]) == 0
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "model" / "consolidated.safetensors")
    assert not any(k.startswith("mm_whisper_embeddings.whisper_encoder.") for k in keys)  # imported, not copied
    params = json.loads((tmp_path / "model" / "params.json").read_text())
    assert params["voxkit_chat"]["encoder_source"] == str(whisper) and params["tokenizer"] == "byte"
    chat = AudioChat.from_pretrained(tmp_path / "model")
    reply = chat.generate([{"role": "user", "content": [{"type": "audio", "path": str(tmp_path / "data" / "0.wav")},
                                                        {"type": "text", "text": "pitch?"}]}], max_new_tokens=6)
    assert isinstance(reply, str)


def test_recogniser_decoder_folds_into_the_chat_decoder_at_its_delay(tmp_path: Path) -> None:
    torch.manual_seed(1)
    decoder = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=80,
                              rope_theta=1e4, sliding_window=16, tied_embeddings=True, ada_rms_norm_t_cond=True)
    encoder = TransformerArgs(dim=16, n_layers=1, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=2, vocab_size=0,
                              use_biases=True, rope_theta=1e4, sliding_window=8)
    recogniser = RealtimeRecognizer(RealtimeArgs(decoder=decoder, encoder=encoder, n_mels=8)).eval()
    with torch.no_grad():  # a trained model's Ada-RMSNorm is far from its zero init
        for p in recogniser.decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_recognizer(recogniser, tmp_path / "rec")
    chat_decoder = Transformer(TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2,
                                               vocab_size=80, rope_theta=1e4, tied_embeddings=True, max_seq_len=64)).eval()
    chat_decoder.load_state_dict(decoder_from_recognizer(str(tmp_path / "rec"), delay_tokens=6))
    tokens = torch.randint(0, 80, (2, 12))
    with torch.no_grad():
        ref = recogniser.decoder(tokens, num_delay_tokens=torch.full((2,), 6.0))
        other = recogniser.decoder(tokens, num_delay_tokens=torch.full((2,), 20.0))
        out = chat_decoder(tokens)
    assert (out - ref).abs().max() <= 1e-4
    assert (other - ref).abs().max() > 1e-2  # the delay matters, so the fold is what makes them equal


def test_chat_steps_under_bf16_autocast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dtype paths of a GPU run (bf16 autocast), taken on the CPU: see test_codec_task."""
    from voxkit.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "_autocast", lambda self: torch.autocast(device_type="cpu", dtype=torch.bfloat16))
    whisper = tiny_whisper_folder(tmp_path / "whisper")
    examples = instruction_file(tmp_path / "data")
    out = tmp_path / "run"
    recipe = tmp_path / "chat.toml"
    recipe.write_text(RECIPE.format(whisper=whisper, vocab=ByteTokenizer().vocab_size, steps=3, out=out, examples=examples))
    assert cli_main(["train", str(recipe)]) == 0
    scalars = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train/chat/loss"]) for r in scalars if "train/chat/loss" in r)
    assert np.isfinite(scalars[-1]["eval/chat/dev_loss"])
