"""The shared Mistral-style backbone (voxkit.lm)."""

from voxkit.lm.args import Llama4ScalingArgs, MoeArgs, TransformerArgs, YarnArgs
from voxkit.lm.transformer import Transformer, TransformerBlock

__all__ = ["Llama4ScalingArgs", "MoeArgs", "Transformer", "TransformerArgs", "TransformerBlock", "YarnArgs"]
