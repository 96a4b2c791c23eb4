"""Tiny random recognisers and synthetic audio shared by the ASR tests."""

from __future__ import annotations

import math

import torch

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.model import RealtimeRecognizer
from voxkit.lm import TransformerArgs
from voxkit.tokenizer import ByteTokenizer


def tiny_args(n_mels: int = 128, left_pad: int = 3, enc_window: int = 6, dec_window: int = 9, encoder_delay: bool = False) -> RealtimeArgs:
    enc = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=4, vocab_size=0,
                          rope_theta=1e6, sliding_window=enc_window, use_biases=True,
                          ada_rms_norm_t_cond=encoder_delay, ada_rms_norm_t_cond_dim=8 if encoder_delay else None)
    dec = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2,
                          vocab_size=ByteTokenizer().vocab_size, rope_theta=1e6, sliding_window=dec_window,
                          tied_embeddings=True, ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=32)
    return RealtimeArgs(decoder=dec, encoder=enc, n_mels=n_mels, n_left_pad_tokens=left_pad, right_pad_tokens=2)


def tiny_model(seed: int = 0, **kwargs: int) -> RealtimeRecognizer:
    torch.manual_seed(seed)
    model = RealtimeRecognizer(tiny_args(**kwargs)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.2 * torch.randn_like(p))  # non-trivial biases and norm gains
        # Random final-norm gains make a random model emit varied tokens instead of echoing its
        # [STREAMING_PAD] input forever.
        model.decoder.norm.weight.normal_(0.0, 1.0)
        model.decoder.tok_embeddings.weight.normal_(0.0, 0.1)
    return model


def chirp(seconds: float, seed: int = 0) -> torch.Tensor:
    """A deterministic, speech-like test signal at 16 kHz (tones with a moving pitch + noise)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    pitch = 150 + 80 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / 16000
    wav = 0.3 * torch.sin(phase) + 0.1 * torch.sin(3 * phase) + 0.02 * torch.randn(t.shape, generator=g)
    return wav * (0.5 + 0.5 * torch.sin(2 * math.pi * 1.3 * t).abs())
