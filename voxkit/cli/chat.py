"""``voxkit chat``: a quick question about audio files (or plain text) with an audio-chat model.

    voxkit chat "What is said?" --audio talk.wav          # one audio, one question
    voxkit chat "Which clip is longer?" --audio a.wav --audio b.flac
    voxkit chat --transcribe --audio talk.mp3             # the transcription request
    voxkit chat "Tell me a word that rhymes with cat."    # text only

``voxkit eval chat`` and ``voxkit export chat`` live in eval.py / export.py and call the functions
at the end of this file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from voxkit.errors import VoxkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("chat", help="ask an audio-chat model about audio files, or transcribe them")
    p.add_argument("question", nargs="?", default=None, help="the question (omit with --transcribe)")
    p.add_argument("--audio", action="append", default=[], metavar="FILE", help="audio file (any format and rate); repeatable")
    p.add_argument("--transcribe", action="store_true", help="send the transcription request of the one --audio file")
    p.add_argument("--language", default=None, help="language code of the transcription request (default en; --transcribe only)")
    p.add_argument("--system", default=None, help="a system prompt (text-only conversations; not with --transcribe)")
    p.add_argument("--model", default=None, metavar="DIR", help="chat model folder (default: the bundled model)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); not with --transcribe, which is greedy")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling (with --temperature > 0)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampling (with --temperature > 0)")
    p.add_argument("--no-stream", action="store_true", help="print the answer at the end instead of as it is generated")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxkit.devices import usable_device

    check_combination(args)
    if args.max_new_tokens < 1:
        raise VoxkitError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    usable_device(args.device)
    from voxkit.chat.api import AudioChat

    chat = AudioChat.from_pretrained(args.model, device=args.device)
    if args.transcribe:
        language = "en" if args.language is None else args.language  # an empty --language is refused, not English
        print(chat.transcribe(args.audio[0], language=language, max_new_tokens=args.max_new_tokens))
        return 0
    content: list[dict[str, Any]] = [{"type": "audio", "path": path} for path in args.audio]
    content.append({"type": "text", "text": args.question})
    messages = ([{"role": "system", "content": args.system}] if args.system is not None else []) + [{"role": "user", "content": content}]
    options = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed}
    if args.no_stream:
        print(chat.generate(messages, **options))
        return 0
    for delta in chat.stream(messages, **options):
        sys.stdout.write(delta)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def check_combination(args: argparse.Namespace) -> None:
    """Refuse flags the chosen request would ignore, in one line, before the model loads.

    Why refuse rather than ignore: the transcription request is greedy and has no system prompt
    (``AudioChat.transcribe``), and a question has no language hint, so a user who passes those
    flags would get an answer that silently did not use them (and a --seed that reproduces nothing).
    ``--temperature 0`` is accepted with --transcribe: it is what transcription does anyway.
    """
    from voxkit.checks import unicode_problem

    for flag, text in (("the question", args.question), ("--system", args.system)):
        if text is not None and (problem := unicode_problem(text)) is not None:
            raise VoxkitError(f"{flag} {problem}")
    if args.transcribe:
        if args.question:
            raise VoxkitError("--transcribe takes no question")
        if len(args.audio) != 1:
            raise VoxkitError("--transcribe needs exactly one --audio FILE")
        unused = [flag for flag, given in (("--system", args.system is not None), ("--temperature", args.temperature != 0.0),
                                           ("--top-p", args.top_p is not None), ("--seed", args.seed is not None)) if given]
        if unused:
            raise VoxkitError(f"--transcribe is greedy and takes no system prompt: drop {', '.join(unused)}")
        return
    if not args.question or not args.question.strip():
        raise VoxkitError("ask a question (voxkit chat \"What is said?\" --audio FILE), or pass --transcribe")
    if args.language is not None:
        raise VoxkitError("--language is the hint of the transcription request: use it with --transcribe (or ask in the question)")
    if args.system is not None and not args.system.strip():
        raise VoxkitError("--system is empty: give the system prompt's text, or drop --system")
    if args.temperature == 0.0:
        from voxkit.cli.flags import refuse_sampling_flags_when_greedy

        refuse_sampling_flags_when_greedy([flag for flag, given in (("--top-p", args.top_p), ("--seed", args.seed)) if given is not None])


# ----------------------------------------------------------------------------- eval / export


def run_eval(args: argparse.Namespace) -> int:
    """``voxkit eval chat``: transcription WER per manifest (each model, Whisper tiny.en) and instruction accuracy."""
    import json

    from voxkit.asr.evaluate import evaluate_peer, load_waves
    from voxkit.chat.api import AudioChat
    from voxkit.chat.evaluate import (
        format_accuracy_table,
        format_wer_table,
        instruction_accuracy,
        transcription_wer,
        transcripts,
    )
    from voxkit.chat.instructions import read_examples
    from voxkit.data.manifest import read_manifest

    if not args.model:
        raise VoxkitError("name at least one chat model folder with --model DIR")
    manifests = {m: read_manifest(m, required=("audio", "text"))[: args.limit] for m in args.manifests}
    for name, rows in manifests.items():
        if not rows:
            raise VoxkitError(f"no utterances in {name}")
    examples = [e for path in args.instructions for e in read_examples(path)[: args.limit]]
    peer = None
    if args.peer != "none":
        from voxkit.asr.peer import load_peer

        peer = load_peer(args.peer)  # a missing extra fails before the long part
    chats = {m: AudioChat.from_pretrained(m) for m in args.model}
    table: dict[str, dict[str, tuple[int, float]]] = {}
    details: dict[str, Any] = {}
    for name, rows in manifests.items():
        waves = load_waves(rows, progress=not args.quiet)
        table[name] = {}
        for model_name, chat in chats.items():
            hyps = transcripts(chat, waves, language=args.language, progress=not args.quiet)
            table[name][model_name] = (len(rows), transcription_wer(rows, hyps))
            details.setdefault(name, {})[model_name] = hyps
        if peer is not None:
            # an English-only peer hears the rows in its language (or without one): see evaluate_peer
            scores, texts = evaluate_peer(peer, rows, waves, progress=not args.quiet, own_languages=True)
            if "all" in scores:
                table[name][peer.name] = (sum(t is not None for t in texts), scores["all"])
            details[name][peer.name] = texts
    print(format_wer_table(table))
    accuracy = {}
    if examples:
        for model_name, chat in chats.items():
            accuracy[model_name], replies = instruction_accuracy(chat, examples, progress=not args.quiet)
            details.setdefault("instructions", {})[model_name] = replies
        print("\nHeld-out instruction questions, exact match after normalisation:\n")
        print(format_accuracy_table(accuracy))
    if args.json:
        out = {"wer": {k: {m: {"clips": n, "wer": w} for m, (n, w) in v.items()} for k, v in table.items()},
               "accuracy": {m: {k: {"correct": s.correct, "total": s.total} for k, s in a.items()} for m, a in accuracy.items()},
               "outputs": details}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``voxkit export chat RUN --out DIR``: the published layout plus the run's tokenizer; an imported
    encoder (Whisper) is named, not copied."""
    from pathlib import Path

    import torch

    from voxkit.asr.bundle import training_tokenizer
    from voxkit.chat.checkpoint import load_chat, save_chat
    from voxkit.cli.outputs import output_folder
    from voxkit.train.checkpointing import latest_checkpoint

    output_folder(args.out, "--out", make=False)
    path = Path(args.checkpoint)
    if (path / "checkpoints").is_dir():
        path = latest_checkpoint(path) or path
    tokenizer = training_tokenizer(path, "pass the run folder the recipe wrote")
    model = load_chat(path)
    out = save_chat(model, args.out, tokenizer=tokenizer, dtype=getattr(torch, args.dtype), with_encoder=args.with_encoder)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    imported = "" if args.with_encoder or model.args.encoder_source is None else f"; encoder imported from {model.args.encoder_source}"
    print(f"{out}: chat model from {path} ({size:.1f} MB{imported})")
    return 0
