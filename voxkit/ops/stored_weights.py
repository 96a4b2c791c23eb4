"""Inference weights kept in 16-bit storage and widened to float32 at each use.

Why: a streaming step multiplies a handful of rows (one decoder token and four encoder frames per
stream) by every weight matrix of the model, so on a CPU the step is bound by the bytes of weight
read from memory, not by arithmetic. The bundled recogniser is saved in float16; loading it as
float32 doubles those bytes (55 MB per step for 13.9 M parameters, more than a 32 MB L3 cache) for
no gain in precision. :func:`keep_16bit_weights` keeps such weights in float16 (bfloat16 for
published checkpoints) and widens them just before the usual float32 matmul: the numbers that
enter the matmul are the same, so the output is bit-identical to the float32 model, while the
memory traffic per step halves. The widened copy is a short-lived temporary that stays in cache;
on this project's CPU it is cheaper than reading float32 weights at every row count measured
(docs/benchmarks.md), unlike float16 arithmetic, which torch runs row by row without native
float16 products. For the few rows of a streaming step on a CPU, :func:`voxkit.ops.stored_linear`
goes one step further and widens inside a C kernel (no float32 copy at all); that path sums in
another order, so its results agree with float32 to rounding rather than bit for bit
(``VOXKIT_KERNELS=off`` restores the bit-identical reference).

Only tensors whose every value survives the round trip to 16 bits are touched, so a model trained
and saved in float32 is left exactly as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.ops.linear import stored_linear


class StoredLinear(nn.Module):
    """``nn.Linear`` whose weight lives in a 16-bit dtype; bias and activations keep their dtype."""

    def __init__(self, linear: nn.Linear, storage: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(storage), requires_grad=False)  # [out, in]
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stored_linear(x, self.weight, self.bias)


class StoredEmbedding(nn.Module):
    """``nn.Embedding`` whose table lives in a 16-bit dtype; rows come out in ``compute_dtype``.

    Tied output heads read ``.weight`` directly and widen it themselves (``Transformer.logits``).
    """

    def __init__(self, embedding: nn.Embedding, storage: torch.dtype) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        self.compute_dtype = embedding.weight.dtype
        self.weight = nn.Parameter(embedding.weight.detach().to(storage), requires_grad=False)  # [V, D]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.weight).to(self.compute_dtype)  # [..., D]


def _fits(weight: torch.Tensor, storage: torch.dtype) -> bool:
    """True when every value of ``weight`` is exactly representable in ``storage``."""
    return weight.dtype == torch.float32 and torch.equal(weight.to(storage).to(weight.dtype), weight)


@torch.no_grad()
def keep_16bit_weights(model: nn.Module, storages: Sequence[torch.dtype] = (torch.float16, torch.bfloat16)) -> int:
    """Swap, in place, every float32 Linear / Embedding whose weight fits one of ``storages`` exactly.

    The first dtype that holds every value of a weight is used (float16, the bundled models'
    storage, else bfloat16, the published checkpoints'). For inference only: the swapped weights
    do not train. Returns how many modules were swapped; 0 means the model is unchanged.
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, (nn.Linear, nn.Embedding)):
                continue
            storage = next((d for d in storages if _fits(child.weight, d)), None)
            if storage is None:
                continue
            wrapper = StoredLinear(child, storage) if isinstance(child, nn.Linear) else StoredEmbedding(child, storage)
            setattr(parent, name, wrapper)
            swapped += 1
    return swapped
