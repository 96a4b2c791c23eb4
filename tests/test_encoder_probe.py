"""scripts/probe_encoder.py's packing, targets and CTC probe (the encoders themselves need the peer extra)."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType

import jiwer
import torch


def test_packing_fills_whisper_windows_and_cuts_every_utterance_back_out(load_script: Callable[[str], ModuleType]) -> None:
    probe = load_script("probe_encoder")
    rng = random.Random(0)
    waves = [torch.randn(rng.randint(3_000, 200_000)) for _ in range(40)]  # 0.2 - 12.5 s
    packs = probe.pack(waves)
    seen = []
    for audio, spans in packs:
        assert audio.numel() % probe.FRAME == 0 and audio.numel() // probe.FRAME <= probe.PACK_FRAMES
        for i, start, frames in spans:
            cut = audio[start * probe.FRAME : (start + frames) * probe.FRAME]
            assert frames == -(-waves[i].numel() // probe.FRAME)
            assert torch.equal(cut[: waves[i].numel()], waves[i]) and not cut[waves[i].numel() :].any()
            seen.append(i)
    assert sorted(seen) == list(range(40)) and len(packs) < 40


def test_targets_and_greedy_decoding(load_script: Callable[[str], ModuleType]) -> None:
    probe = load_script("probe_encoder")
    assert probe.char_text("Don't STOP, 42 times!") == "don't stop times"
    index = {c: probe.ALPHABET.index(c) + 1 for c in probe.ALPHABET}
    frames = [0, index["a"], index["a"], 0, index["a"], index["b"], index[" "], index[" "], 0, index["c"], 0]
    assert probe.greedy(torch.tensor(frames)) == "aab c"


def test_the_probe_learns_to_read_features_that_carry_the_characters(load_script: Callable[[str], ModuleType]) -> None:
    """Features that are a noisy one-hot of the spoken character: the probe must transcribe them."""
    probe = load_script("probe_encoder")
    rng = random.Random(1)
    torch.manual_seed(1)
    texts, feats = [], []
    for _ in range(220):
        text = " ".join("".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 4))) for _ in range(2))
        ids = [probe.ALPHABET.index(c) + 1 for c in text]
        x = torch.zeros(4 * len(ids) + 4, 32)
        for k, i in enumerate(ids):
            x[2 + 4 * k : 2 + 4 * k + 3, i] = 1.0  # 3 frames per character, one silent frame between
        texts.append(text)
        feats.append((x + 0.05 * torch.randn_like(x)).to(torch.float16))
    model, mean, std = probe.train_probe(feats[:200], texts[:200], epochs=8, seed=0, max_frames=400)
    hyps = probe.transcribe(model, feats[200:], mean, std)  # 20 held-out utterances
    assert jiwer.cer(texts[200:], hyps) < 0.1
