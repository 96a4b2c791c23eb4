"""The shared Mistral-style backbone (voxkit.lm)."""

from voxkit.lm.args import Llama4ScalingArgs, MoeArgs, TransformerArgs, YarnArgs
from voxkit.lm.block import TransformerBlock
from voxkit.lm.transformer import Transformer

__all__ = ["Llama4ScalingArgs", "MoeArgs", "Transformer", "TransformerArgs", "TransformerBlock", "YarnArgs"]
