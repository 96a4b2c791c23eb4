"""``voxkit generate``: continue a text prompt (or answer it as a chat) with a backbone checkpoint.

Text is printed while it is generated. A token may end in the middle of a multi-byte UTF-8
character (Tekken is byte-level BPE), so tokens are turned into bytes and fed to an incremental
UTF-8 decoder that only ever releases complete characters.
"""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from voxkit.cli.flags import read_stdin_text, refuse_sampling_flags_when_greedy
from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import torch

    from voxkit.tokenizer import Tokenizer

DTYPES = ("float32", "bfloat16", "float16")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="generate text from a prompt with a backbone checkpoint")
    p.add_argument("prompt", help="the prompt text ('-' reads it from stdin)")
    p.add_argument("--model", required=True, help="model folder (mistral-native or Hugging Face layout)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user turn of the chat template")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="most new tokens to generate (default 256); the text also stops where the model's context ends")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1]")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="default: float32 on CPU, bfloat16 on CUDA")
    p.set_defaults(func=run)


class TextStream:
    """Writes token ids as text, holding back bytes of characters that are not complete yet."""

    def __init__(self, tokenizer: Tokenizer, out: TextIO) -> None:
        self.tokenizer = tokenizer
        self.out = out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, token_id: int) -> None:
        text = self.decoder.decode(self.tokenizer.token_bytes(token_id))
        if text:
            self.out.write(text)
            self.out.flush()

    def close(self) -> None:
        self.out.write(self.decoder.decode(b"", final=True) + "\n")
        self.out.flush()


def _resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise VoxkitError(f"unknown device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VoxkitError(f"device {name!r} requested but CUDA is not available")
    return device


def _check_args(args: argparse.Namespace) -> None:
    from voxkit.checks import unicode_problem

    if args.prompt == "-":  # a prompt from a file: voxkit generate - < prompt.txt, as voxkit speak - reads its text
        args.prompt = read_stdin_text("prompt")
    if not args.prompt.strip():
        raise VoxkitError("the prompt is empty")
    if (problem := unicode_problem(args.prompt)) is not None:
        raise VoxkitError(f"the prompt {problem}")
    if args.max_tokens < 1:
        raise VoxkitError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.temperature < 0:
        raise VoxkitError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise VoxkitError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k is not None and args.top_k < 1:
        raise VoxkitError(f"--top-k must be >= 1, got {args.top_k}")
    if args.temperature == 0.0:
        refuse_sampling_flags_when_greedy([flag for flag, given in (("--top-p", args.top_p), ("--top-k", args.top_k),
                                                                    ("--seed", args.seed)) if given is not None])
    model = Path(args.model)
    if model.is_file():  # a weights or config file given instead of the folder that holds it
        raise VoxkitError(f"--model {args.model} is a file: give the model folder that holds it ({model.parent})")
    if not model.is_dir():
        raise VoxkitError(f"model folder not found: {args.model}")
    _check_kind(Path(args.model))


def _check_kind(folder: Path) -> None:
    """Refuse an audio-chat, recogniser or TTS folder by name: loading one as a text backbone fails
    with a list of missing and unexpected weight names, which reads like a broken checkpoint."""
    import json

    try:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        _check_hf_kind(folder)  # a transformers folder, or an unreadable file the loader reports itself
        return
    if not isinstance(params, dict):
        return
    if "voxkit_tts" in params:
        raise VoxkitError(f"{folder} is a TTS model: speak with it (voxkit speak TEXT --model {folder})")
    if "multimodal" in params:
        if params.get("ada_rms_norm_t_cond"):  # the delay-conditioned decoder of a streaming recogniser
            raise VoxkitError(f"{folder} is a speech recogniser: transcribe with it (voxkit transcribe AUDIO --model {folder})")
        raise VoxkitError(f"{folder} is an audio-chat model: chat with it (voxkit chat \"...\" --model {folder})")


def _check_hf_kind(folder: Path) -> None:
    """The same refusal for transformers' folders of the recogniser and the audio-chat model."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind == "voxtral_realtime":
        raise VoxkitError(f"{folder} is a speech recogniser: transcribe with it (voxkit transcribe AUDIO --model {folder})")
    if kind == "voxtral":
        raise VoxkitError(f"{folder} is an audio-chat model: chat with it (voxkit chat \"...\" --model {folder})")


def _budget(prompt_tokens: int, max_tokens: int, context: int | None) -> int:
    """--max-tokens is an upper bound: the text also stops where the model's context (``max_seq_len``,
    when the folder gives one) ends, as AudioChat's replies do. Why: positions past it are ones the
    model never saw, and a full-attention model's cache would be sized to the whole request."""
    if not context:
        return max_tokens
    if prompt_tokens >= context:
        raise VoxkitError(f"the prompt takes {prompt_tokens} tokens, this model reads at most {context - 1} (shorten the prompt)")
    return min(max_tokens, context - prompt_tokens)


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import torch

    from voxkit.lm.generate import Generator
    from voxkit.lm.loading import load_transformer
    from voxkit.lm.sampling import SamplingConfig
    from voxkit.tokenizer import load_tokenizer

    device = _resolve_device(args.device)
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    model = load_transformer(args.model, device=device, dtype=getattr(torch, dtype_name))
    tokenizer = load_tokenizer(args.model)
    if model.args.vocab_size > tokenizer.vocab_size:  # a sampled id past the tokenizer could not be printed
        raise VoxkitError(
            f"the model has {model.args.vocab_size} ids but its tokenizer only {tokenizer.vocab_size}: "
            "put the model's own tokenizer in its folder (tekken.json, or 'tokenizer' in params.json)"
        )
    if tokenizer.vocab_size > model.args.vocab_size:
        raise VoxkitError(
            f"the tokenizer has {tokenizer.vocab_size} ids but the model only {model.args.vocab_size}: "
            "put the model's tokenizer in its folder (tekken.json, or 'tokenizer' in params.json)"
        )
    if args.chat:
        prompt = tokenizer.encode_chat([{"role": "user", "content": args.prompt}])
    else:
        prompt = tokenizer.encode(args.prompt, bos=True, eos=False)
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    generator = Generator(model, sampling, stop_ids=[tokenizer.eos_id])
    stream = TextStream(tokenizer, sys.stdout)
    for step in generator.stream([prompt], _budget(len(prompt), args.max_tokens, model.args.max_seq_len), seed=args.seed):
        if step[0] is not None:
            stream.write(step[0])
    stream.close()
    return 0
