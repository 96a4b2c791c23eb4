"""The codec trains with the shared trainer: two optimizers, checkpoints that load as a codec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from voxkit.cli.main import main as cli_main
from voxkit.codec import Codec
from voxkit.codec.checkpoint import load_codec
from voxkit.train.checkpointing import latest_checkpoint

RECIPE = """
[model]
name = "codec"
dim = 32
hidden_dim = 64
head_dim = 8
n_heads = 4
n_kv_heads = 4
semantic_codebook_size = 64
semantic_dim = 16
acoustic_dim = 4
acoustic_codebook_size = 5
disc_channels = 4
distill_dim = 0

[optim]
lr = 3e-3
warmup_steps = 2
weight_decay = 0.0

[train]
max_steps = {steps}
log_every = 1
save_every = 0
eval_every = 0
out_dir = "{out}"
progress = false

[tasks.codec]
train = ["{manifest}"]
dev = ["{manifest}"]
segment_seconds = 0.32
batch_size = 4
distill_weight = 0.0          # no teacher: the distillation is off
eval_clips = 2
"""


def tone_manifest(folder: Path, n: int = 8) -> Path:
    """Harmonic tones of different pitches at 24 kHz, 0.5 s each."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    t = np.arange(12000) / 24000
    for i in range(n):
        f0 = 110 + 20 * i
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.2
        sf.write(folder / f"{i}.wav", wave.astype(np.float32), 24000)
        rows.append({"audio": f"{i}.wav", "text": "tone", "duration": 0.5})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_scalars(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]


def test_codec_recipe_trains_both_optimizers_and_exports(tmp_path: Path) -> None:
    manifest = tone_manifest(tmp_path / "data")
    out = tmp_path / "run"
    recipe = tmp_path / "codec.toml"
    recipe.write_text(RECIPE.format(steps=24, out=out, manifest=manifest))
    torch.manual_seed(0)
    assert cli_main(["train", str(recipe)]) == 0
    rows = [r for r in read_scalars(out) if "train/codec/main/mrstft" in r]
    assert len(rows) == 24
    assert all("train/codec/discriminator/d_loss" in r for r in rows)  # the discriminator's update ran every step
    assert all(1 <= r["train/codec/main/batch_perplexity"] <= 64 for r in rows)  # the batch's semantic code usage
    first = np.mean([r["train/codec/main/mrstft"] for r in rows[:4]])
    last = np.mean([r["train/codec/main/mrstft"] for r in rows[-4:]])
    assert last < first  # reconstruction improves
    final = read_scalars(out)[-1]
    assert "eval/codec/dev_perplexity" in final and final["eval/codec/dev_perplexity"] >= 1
    model = load_codec(latest_checkpoint(out))  # a training checkpoint loads as a codec (no discriminator)
    codec = Codec(model)
    audio, rate = codec.roundtrip(np.zeros(4000, dtype=np.float32), 16000)
    assert rate == 24000 and audio.shape == (6000,)


def test_codec_steps_under_bf16_autocast(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A GPU run trains under bf16 autocast (train.amp); the CPU tests run float32. The same
    autocast on the CPU takes the same dtype paths (STFT losses, VQ EMA, FSQ, discriminator), so a
    dtype mismatch shows here instead of on a lent GPU's one call."""
    from voxkit.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "_autocast", lambda self: torch.autocast(device_type="cpu", dtype=torch.bfloat16))
    manifest = tone_manifest(tmp_path / "data")
    out = tmp_path / "run"
    recipe = tmp_path / "codec.toml"
    recipe.write_text(RECIPE.format(steps=3, out=out, manifest=manifest))
    assert cli_main(["train", str(recipe)]) == 0
    rows = read_scalars(out)
    steps = [r for r in rows if "train/codec/main/loss" in r]
    assert len(steps) == 3 and all(np.isfinite(r["train/codec/main/loss"]) for r in steps)
    assert all(np.isfinite(r["train/codec/discriminator/d_loss"]) for r in steps)
    assert np.isfinite(rows[-1]["eval/codec/dev_perplexity"])
