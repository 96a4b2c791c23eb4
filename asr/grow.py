"""Grow a trained recogniser without changing what it computes, to fine-tune it bigger.

Function-preserving moves (as in Net2Net):
- a *twin* inserted after decoder layer ``i`` copies its weights with the two residual output
  projections (``attention.wo``, ``feed_forward.w2``) zeroed, so at first it adds nothing;
- a *wider feed-forward* gets new random ``w1``/``w3`` rows and zero ``w2`` columns;
- *encoder delay gains*: every encoder layer gets the decoder's Ada-RMSNorm delay conditioning
  (DESIGN §4 asks to measure it) with a random first and a zero second matrix, so ``1 + g = 1``.

The grown model's outputs equal the original's; training then puts the new weights to use (the
gradient reaches them through the zeroed projections from the first step). The small recogniser's
decoder is its weak part (docs/asr.md), and growing keeps everything it learnt, which a fresh larger
decoder would first have to relearn. The price is speed: on one CPU core each added decoder layer
costs ~0.75 ms per 80 ms step (measured: 4 -> 8 layers took a step from 5.5 to 8.5 ms).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from voxkit.lm.args import ADA_COND_DIM

_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.(.+)$")
# a layer's residual outputs (biases too, for stacks that have them)
_ZEROED = ("attention.wo.weight", "attention.wo.bias", "feed_forward.w2.weight", "feed_forward.w2.bias")


def widen_ffn(state: dict[str, torch.Tensor], hidden: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Module state dict -> the same with every decoder SwiGLU at ``hidden`` units.

    New ``w1``/``w3`` rows are Gaussian with the trained rows' std (so the new units are active and
    receive gradient); new ``w2`` columns are zero (so they add nothing yet).
    """
    out = dict(state)
    for key, value in state.items():
        m = _LAYER.match(key)
        if m is None or not m.group(2).startswith("feed_forward."):
            continue
        rest = m.group(2)
        if rest in ("feed_forward.w1.weight", "feed_forward.w3.weight"):  # [H, D] -> [hidden, D]
            if hidden < value.shape[0]:
                raise ValueError(f"cannot narrow {key} from {value.shape[0]} to {hidden} units")
            extra = torch.randn(hidden - value.shape[0], value.shape[1], generator=generator) * value.float().std()  # [hidden - H, D]
            out[key] = torch.cat([value, extra.to(value.dtype)], dim=0)
        elif rest == "feed_forward.w2.weight":  # [D, H] -> [D, hidden]
            out[key] = torch.cat([value, value.new_zeros(value.shape[0], hidden - value.shape[1])], dim=1)
        else:
            raise ValueError(f"{key}: cannot widen a feed-forward with this tensor (biases or MoE are not supported)")
    return out


def add_twins(state: dict[str, torch.Tensor], n_layers: int, twins: Iterable[int]) -> dict[str, torch.Tensor]:
    """Module state dict with ``n_layers`` decoder layers -> one with a silent twin after each layer in ``twins``."""
    twins = set(twins)
    if not twins <= set(range(n_layers)):
        raise ValueError(f"twins must name decoder layers 0..{n_layers - 1}, got {sorted(twins)}")
    new_index, k = {}, 0
    for i in range(n_layers):
        new_index[i] = k
        k += 2 if i in twins else 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _LAYER.match(key)
        if m is None:
            out[key] = value
            continue
        i, rest = int(m.group(1)), m.group(2)
        if i >= n_layers:
            raise ValueError(f"{key}: layer index beyond n_layers={n_layers}")
        out[f"decoder.layers.{new_index[i]}.{rest}"] = value
        if i in twins:
            out[f"decoder.layers.{new_index[i] + 1}.{rest}"] = torch.zeros_like(value) if rest in _ZEROED else value.clone()
    return out


def add_encoder_delay_gains(
    state: dict[str, torch.Tensor], encoder: dict, generator: torch.Generator, cond_dim: int = ADA_COND_DIM
) -> dict[str, torch.Tensor]:
    """Module state dict -> the same plus silent Ada-RMSNorm gains in every encoder layer.

    ``encoder`` is the params.json encoder section (``dim``, ``n_layers``). The first matrix is
    random like a fresh Linear's, the second zero: the gain starts at exactly 1 and its gradient
    reaches the second matrix from the first step.
    """
    dim, n_layers = int(encoder["dim"]), int(encoder["n_layers"])
    out = dict(state)
    dtype = next(iter(state.values())).dtype
    for i in range(n_layers):
        prefix = f"encoder.transformer.layers.{i}.ada_rms_norm_t_cond"
        if f"{prefix}.0.weight" in state:
            raise ValueError("the encoder is delay-conditioned already")
        out[f"{prefix}.0.weight"] = (torch.randn(cond_dim, dim, generator=generator) * dim**-0.5).to(dtype)  # [cond, dim]
        out[f"{prefix}.2.weight"] = torch.zeros(dim, cond_dim, dtype=dtype)  # [dim, cond]
    return out


def grow_state(
    state: dict[str, torch.Tensor],
    params: dict,
    twins: Iterable[int] = (),
    ffn_hidden: int | None = None,
    seed: int = 0,
    encoder_delay: bool = False,
) -> tuple[dict[str, torch.Tensor], dict]:
    """(module state dict, params.json-style config) -> grown (state, config); the input is untouched."""
    params = json.loads(json.dumps(params))
    twins = sorted(set(twins))
    if encoder_delay:
        encoder = params["multimodal"]["whisper_model_args"]["encoder_args"]
        cond_dim = int(params.get("ada_rms_norm_t_cond_dim") or ADA_COND_DIM)  # the decoder's gain width
        state = add_encoder_delay_gains(state, encoder, torch.Generator().manual_seed(seed + 1), cond_dim)
        encoder.update(ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=cond_dim)
    if ffn_hidden is not None and ffn_hidden != params["hidden_dim"]:
        state = widen_ffn(state, ffn_hidden, torch.Generator().manual_seed(seed))
        params["hidden_dim"] = ffn_hidden
    if twins:
        state = add_twins(state, params["n_layers"], twins)
        params["n_layers"] += len(twins)
    return state, params


def grow_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    twins: Iterable[int] = (),
    ffn_hidden: int | None = None,
    seed: int = 0,
    encoder_delay: bool = False,
) -> dict:
    """Training checkpoint folder (config.json + model.safetensors) -> grown folder for ``model.init_from``; returns the new config.

    The grown folder is itself a training checkpoint of the recogniser (weights + marked config,
    no train state): ``model.init_from`` reads its weights, ``voxkit export asr`` exports it.
    """
    from voxkit.asr.checkpoint import RECOGNIZER_MODEL
    from voxkit.checkpoint import detect_layout, read_config, read_tensors, weight_files, write_folder
    from voxkit.errors import CheckpointError

    src, dst = Path(src), Path(dst)
    try:
        kind = detect_layout(src)
    except CheckpointError as err:
        raise CheckpointError(f"{src} is not a training checkpoint (config.json + model.safetensors): {err}") from None
    if kind != "training":
        raise CheckpointError(f"{src} is not a training checkpoint (config.json + model.safetensors) but a {kind} model folder")
    params = read_config(src, "training")
    state = {k: v.float() for k, v in read_tensors(weight_files(src, "training")).items()}
    try:
        state, params = grow_state(state, params, twins, ffn_hidden, seed, encoder_delay)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    write_folder(dst, "training", params, state, model=RECOGNIZER_MODEL)
    return params
