"""Random models at published shapes, built straight on the device, for the end-to-end sections.

Weights are random (normal, scaled by 1/sqrt(fan-in); norm gains 1, biases 0) and generated on the
device in their final dtype: a 7B model never passes through host memory or float32. The decode
model is a transformers ``MistralForCausalLM`` converted with :mod:`voxkit.lm.convert`, as
scripts/bench_decode.py does, so that both libraries run the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from voxkit.asr.args import RealtimeArgs
from voxkit.checkpoint import build_and_load
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.convert import hf_config_to_args, hf_to_native_state

M = TypeVar("M", bound=nn.Module)

# transformers MistralConfig fields of the decode benchmarks (this module's and scripts/bench_decode.py)
DECODE_SIZES: dict[str, dict[str, int]] = {
    # Mistral-7B's shape (random weights): 14.5 GB in bf16, for a GPU
    "7b": dict(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
               head_dim=128, num_hidden_layers=32),
    # weight-read bound on CPUs: 117 MB of fp32 weights per token
    "small": dict(vocab_size=32768, hidden_size=512, intermediate_size=1536, num_attention_heads=8, num_key_value_heads=4,
                  head_dim=64, num_hidden_layers=4),
    # per-step overhead bound: what a library adds around the matrix products shows
    "tiny": dict(vocab_size=4096, hidden_size=256, intermediate_size=768, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=64, num_hidden_layers=4),
    # the CPU smoke run of python -m voxkit.bench.kernels --quick
    "micro": dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, num_hidden_layers=2),
}


def random_module(factory: Callable[[], M], device: torch.device, dtype: torch.dtype, seed: int) -> M:
    """``factory()`` with random weights made on ``device`` in ``dtype`` (built on the meta device,
    loaded with voxkit's loader: non-persistent buffers such as RoPE tables are rebuilt as usual)."""
    with torch.device("meta"):
        skeleton = factory()
    gen = torch.Generator(device=device).manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, ref in skeleton.state_dict().items():
        if not ref.is_floating_point():
            state[key] = torch.zeros(ref.shape, dtype=ref.dtype, device=device)
        elif key.endswith("bias"):
            state[key] = torch.zeros(ref.shape, dtype=dtype, device=device)
        elif ref.dim() <= 1:
            state[key] = torch.ones(ref.shape, dtype=dtype, device=device)
        else:
            fan_in = math.prod(ref.shape[1:])
            state[key] = torch.randn(ref.shape, generator=gen, device=device, dtype=dtype).mul_(fan_in**-0.5)
    del skeleton
    return build_and_load(factory, state, device=device)


def param_bytes(module: nn.Module, skip_prefix: str | None = None) -> int:
    return sum(p.numel() * p.element_size() for n, p in module.named_parameters() if not (skip_prefix and n.startswith(skip_prefix)))


def tensor_bytes(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of every tensor reachable through dataclass fields, lists, tuples and dicts (a state's size)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in obj)
    fields = getattr(obj, "__dataclass_fields__", None)
    if fields:
        return sum(tensor_bytes(getattr(obj, f, None), seen) for f in fields)
    return 0


# ----------------------------------------------------------------------------- backbone training


def train_args(quick: bool) -> TransformerArgs:
    """Mistral-7B's layer shape, 4 layers (1.1 B parameters with embeddings and head), or a tiny one."""
    if quick:
        return TransformerArgs(dim=64, n_layers=2, head_dim=16, hidden_dim=160, n_heads=4, n_kv_heads=2, vocab_size=512,
                               rope_theta=1e6, max_seq_len=64)
    return TransformerArgs(dim=4096, n_layers=4, head_dim=128, hidden_dim=14336, n_heads=32, n_kv_heads=8, vocab_size=32768,
                           rope_theta=1e6, max_seq_len=4096)


# ----------------------------------------------------------------------------- decode


def build_hf_mistral(  # -> MistralForCausalLM
    size: str, dtype: torch.dtype, device: torch.device, seed: int, sliding_window: int | None = None
):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(**DECODE_SIZES[size], sliding_window=sliding_window, max_position_embeddings=8192, rope_theta=1e6,
                           tie_word_embeddings=False)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in place on the device, in the final dtype
    try:
        with torch.device(device):
            return MistralForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)


def decode_args(size: str) -> TransformerArgs:
    """The voxkit arguments of :data:`DECODE_SIZES` ``size`` (what converting the transformers model gives)."""
    c = DECODE_SIZES[size]
    return TransformerArgs(dim=c["hidden_size"], n_layers=c["num_hidden_layers"], head_dim=c["head_dim"],
                           hidden_dim=c["intermediate_size"], n_heads=c["num_attention_heads"], n_kv_heads=c["num_key_value_heads"],
                           vocab_size=c["vocab_size"], norm_eps=1e-6, rope_theta=1e6, max_seq_len=8192)


def voxkit_from_hf(hf_model) -> Transformer:  # noqa: ANN001 (transformers model)
    args = hf_config_to_args(hf_model.config.to_dict())
    state = hf_to_native_state({k: v.detach() for k, v in hf_model.state_dict().items()}, args)
    return build_and_load(lambda: Transformer(args), state, device=next(iter(state.values())).device)


def hf_generate(model, prompt: torch.Tensor, n: int) -> list[int]:  # noqa: ANN001
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=0, eos_token_id=None)
    return out[0, prompt.shape[1]:].tolist()


def agreement(a: list[int], b: list[int]) -> int:
    """How many leading tokens two greedy decodes share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


# ----------------------------------------------------------------------------- realtime streams


def realtime_args(quick: bool) -> RealtimeArgs:
    """Voxtral-Mini-4B-Realtime's shapes (DESIGN §4, as scripts/bench_asr.py --full-size), or a tiny model."""
    if quick:
        from voxkit.tokenizer import ByteTokenizer

        enc = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=4, vocab_size=0,
                              rope_theta=1e6, sliding_window=6, use_biases=True)
        dec = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2,
                              vocab_size=ByteTokenizer().vocab_size, rope_theta=1e6, sliding_window=9, tied_embeddings=True,
                              ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=32)
        return RealtimeArgs(decoder=dec, encoder=enc, n_left_pad_tokens=3, right_pad_tokens=2)
    return RealtimeArgs(
        decoder=TransformerArgs(dim=3072, n_layers=26, head_dim=128, hidden_dim=9216, n_heads=32, n_kv_heads=8, vocab_size=131072,
                                rope_theta=1e6, sliding_window=8192, tied_embeddings=True, ada_rms_norm_t_cond=True,
                                ada_rms_norm_t_cond_dim=32),
        encoder=TransformerArgs(dim=1280, n_layers=32, head_dim=64, hidden_dim=5120, n_heads=32, n_kv_heads=32, vocab_size=0,
                                rope_theta=1e6, sliding_window=750, use_biases=True),
    )


def realtime_tokenizer(quick: bool):  # noqa: ANN201 (a voxkit tokenizer)
    """The published Tekken tokenizer where mistral-common is installed, else the byte tokenizer.

    The timed steps never turn tokens into text (a stream emits nothing before its left padding
    and delay have passed, 39 steps), so the byte tokenizer times the same work; it also spares a
    GPU machine without a package registry the dependency.
    """
    from voxkit.tokenizer import ByteTokenizer, TekkenTokenizer

    if quick:
        return ByteTokenizer()
    try:
        return TekkenTokenizer.shipped()
    except ImportError:
        return ByteTokenizer()


def step_times(
    model, tokenizer, streams: int, warmup: int, steps: int, device: torch.device, delay: int = 6, graphs: bool = False  # noqa: ANN001
) -> list[float]:
    """Seconds of each lock-step 80 ms step of ``streams`` live streams (after ``warmup`` steps),
    as a server runs them: one session, every stream started with its delay and fed audio.
    ``graphs``: the session records its step as CUDA graphs (a TypeError where voxkit lacks the option)."""
    import time

    from voxkit.asr.session import StreamingSession
    from voxkit.audio.constants import ASR_SAMPLES_PER_STEP

    extra = {"graphs": True} if graphs else {}
    session = StreamingSession(model, tokenizer, streams, device=device, **extra)
    try:
        noise = (torch.randn(ASR_SAMPLES_PER_STEP * (warmup + steps + 2)) * 0.05).numpy()
        for b in range(streams):
            session.start(b, delay)
            session.push(b, noise)
        out = []
        for i in range(warmup + steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            session.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                out.append(time.perf_counter() - start)
        return out
    finally:
        session.close()
