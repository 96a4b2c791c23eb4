"""The published codec's checkpoint keys <-> voxkit's module tree.

voxkit's codec computes the published codec's function (same layers, pads, windows, norms and
quantizers; DESIGN §5), so a published checkpoint loads by renaming a few keys:

- QK-norm weights: ``...attention.q_norm.weight`` <-> ``...attention.qk_norm.q_norm.weight``
  (and ``k_norm``): lm keeps both norms in one module;
- LayerScale: ``...attention_scale`` <-> ``...attention_scale.gamma`` (and ``ffn_scale``);
- the semantic codebook: the published EMA sums ``quantizer.semantic_codebook.embedding_sum``
  [8192, 256] and counts ``cluster_usage`` [8192] <-> vector-quantize-pytorch's ``embed_avg`` and
  ``cluster_size``, the codebook itself being their ratio (``embed``);
- ``audio_token_embedding.*`` (the TTS model's code embeddings, stored beside the codec in the
  published checkpoint) is not part of the codec and is left out.

voxkit writes its own codec folders in the published names, so one layout serves both. The open
published checkpoint ships the decoder only (no ``input_proj`` / ``encoder_blocks``): such a codec
decodes, and encoding it is refused with a message (:attr:`CodecModel.has_encoder`).
"""

from __future__ import annotations

import re

import torch

_VQ = "quantizer.semantic._codebook."
_PUBLISHED_VQ = "quantizer.semantic_codebook."
_RENAMES = [  # (published, voxkit) regexes on whole keys
    (r"(.*\.attention)\.(q_norm|k_norm)\.weight", r"\1.qk_norm.\2.weight"),
    (r"(.*\.)(attention_scale|ffn_scale)", r"\1\2.gamma"),
]
_EPS = 1e-5  # the published codebook's floor on a code's usage count
ENCODER_PREFIXES = ("input_proj.", "encoder_blocks.")
OUTSIDE_THE_CODEC = ("audio_token_embedding.",)


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of a checkpoint that stores the codec under a prefix (``audio_tokenizer.``) lose it."""
    marker = "quantizer.semantic_codebook.embedding_sum"
    for key in state:
        if key.endswith(marker) and key != marker:
            prefix = key[: -len(marker)]
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def published_to_module_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published keys -> voxkit's module keys (see the module docstring)."""
    state = _strip_prefix(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(OUTSIDE_THE_CODEC):
            continue
        if key.startswith(_PUBLISHED_VQ):
            continue  # handled below
        for published, ours in _RENAMES:
            if re.fullmatch(published, key):
                key = re.sub(published, ours, key)
                break
        out[key] = value
    if _PUBLISHED_VQ + "embedding_sum" in state:
        total = state[_PUBLISHED_VQ + "embedding_sum"].float()  # [K, D]
        usage = state[_PUBLISHED_VQ + "cluster_usage"].float()  # [K]
        out[_VQ + "embed"] = (total / usage.clamp(min=_EPS)[:, None])[None]  # [1, K, D]
        out[_VQ + "embed_avg"] = total[None]  # [1, K, D]
        out[_VQ + "cluster_size"] = usage[None]  # [1, K]
        out[_VQ + "initted"] = torch.tensor(True)
    return out


def module_to_published_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """voxkit's module keys -> published keys (what :func:`published_to_module_state` reads back).

    The codebook is written as ``embedding_sum = embed * usage`` with the usage floored at the
    published epsilon, so that the published ratio gives back exactly the codebook voxkit uses.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_VQ):
            continue
        key = re.sub(r"\.qk_norm\.(q_norm|k_norm)\.weight$", r".\1.weight", key)
        key = re.sub(r"\.(attention_scale|ffn_scale)\.gamma$", r".\1", key)
        out[key] = value
    if _VQ + "embed" in state:
        usage = state[_VQ + "cluster_size"][0].float().clamp(min=_EPS)  # [K]
        out[_PUBLISHED_VQ + "embedding_sum"] = state[_VQ + "embed"][0].float() * usage[:, None]  # [K, D]
        out[_PUBLISHED_VQ + "cluster_usage"] = usage
    return out
