"""``voxkit chat``: a quick question about audio files (or plain text) with an audio-chat model.

    voxkit chat "What is said?" --audio talk.wav          # one audio, one question
    voxkit chat "Which clip is longer?" --audio a.wav --audio b.flac
    voxkit chat --transcribe --audio talk.mp3             # the transcription request
    voxkit chat "Tell me a word that rhymes with cat."    # text only
    ffmpeg -i talk.m4a -f wav - | voxkit chat "What is said?" --audio -   # one clip on stdin

Each --audio is decoded before the model loads, and a clip that cannot be read is named as the
user gave it (``--audio talk.wav: ...``), not by its place in the messages the command builds.

``voxkit eval chat`` and ``voxkit export chat`` live in eval.py / export.py and call the functions
at the end of this file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import torch

BUNDLED_PARAMS = Path(__file__).resolve().parents[1] / "assets" / "chat-tiny" / "params.json"  # voxkit.chat.api.BUNDLED


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("chat", help="ask an audio-chat model about audio files, or transcribe them")
    p.add_argument("question", nargs="?", default=None, help="the question (omit with --transcribe)")
    p.add_argument("--audio", action="append", default=[], metavar="FILE",
                   help="audio file (any format and rate), or - for one audio file's bytes on stdin; repeatable")
    p.add_argument("--transcribe", action="store_true", help="send the transcription request of the one --audio file")
    p.add_argument("--language", default=None, help="language code of the transcription request (default en; --transcribe only)")
    p.add_argument("--system", default=None, help="a system prompt (text-only conversations; not with --transcribe)")
    p.add_argument("--model", default=None, metavar="DIR", help=(
        "chat model folder (default: the bundled model)" if BUNDLED_PARAMS.is_file() else
        "chat model folder, e.g. one written by voxkit export chat (needed: this voxkit bundles no chat model)"))
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="most tokens of the answer or transcript (default 256); it ends sooner where the model ends it")
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
    from voxkit.chat.template import SAMPLE_RATE

    clips = [_clip(name, args) for name in args.audio]  # [T] at 16 kHz each, before the model loads
    chat = AudioChat.from_pretrained(args.model, device=args.device)
    if args.transcribe:
        language = "en" if args.language is None else args.language  # an empty --language is refused, not English
        with _named_parts(args):
            text = chat.transcribe(clips[0], language=language, sample_rate=SAMPLE_RATE, max_new_tokens=args.max_new_tokens)
        print(text)
        return 0
    content: list[dict[str, Any]] = [{"type": "audio", "array": clip, "sampling_rate": SAMPLE_RATE} for clip in clips]
    content.append({"type": "text", "text": args.question})
    messages = ([{"role": "system", "content": args.system}] if args.system is not None else []) + [{"role": "user", "content": content}]
    options = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed}
    if args.no_stream:
        with _named_parts(args):
            answer = chat.generate(messages, **options)
        print(answer)
        return 0
    with _named_parts(args):
        deltas = chat.stream(messages, **options)  # messages and options are checked here, before the first delta
    for delta in deltas:
        sys.stdout.write(delta)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _clip(name: str, args: argparse.Namespace) -> torch.Tensor:
    """One --audio as float32 mono [T] at the model's 16 kHz; a mistake is one line that names the argument.

    Why the command decodes the clips itself rather than passing paths in the messages: the
    messages' errors say "message 0, part 0", a structure the user of the command never wrote,
    and they came only after the model had loaded.
    """
    from voxkit.audio.io import load_audio
    from voxkit.chat.template import SAMPLE_RATE
    from voxkit.errors import AudioError

    if name == "-":
        return _stdin_clip(args)
    where = f"--audio {name}"
    if name == "":
        raise VoxkitError("--audio is empty: give an audio file, or - for stdin")
    if os.path.isdir(name):
        raise VoxkitError(f"{where}: a folder, not an audio file")
    if not os.path.exists(name):
        raise VoxkitError(f"{where}: audio file not found")
    if not os.path.isfile(name):
        raise VoxkitError(f"{where}: not a regular file; to read a stream, pipe it to standard input (--audio -)")
    try:
        return load_audio(name, SAMPLE_RATE)
    except AudioError as err:  # "cannot decode audio NAME: why": the name is said once, in front
        raise AudioError(f"{where}: {re.sub(rf':? {re.escape(name)}(?=:|$)', '', str(err), count=1)}") from None


def _stdin_clip(args: argparse.Namespace) -> torch.Tensor:
    """``--audio -``: the bytes of one audio file on stdin, read whole, decoded as a file's are.

    Why it is supported: ``voxkit transcribe -`` and ``voxkit codec encode -`` read stdin, and a
    question about a clip that ffmpeg or a recorder writes to a pipe should not need a temporary
    file. Stdin holds one clip, so a second ``-`` is refused (in :func:`check_combination`).
    Containers libsndfile cannot read are refused in the words ``voxkit transcribe -`` uses
    (:func:`~voxkit.audio.stream.container_refusal`); raw samples, which carry no rate, are told to
    get a WAV header from ffmpeg.
    """
    import io

    from voxkit.audio.io import load_audio
    from voxkit.audio.stream import HEAD_BYTES, audio_container, container_refusal
    from voxkit.chat.template import SAMPLE_RATE
    from voxkit.errors import AudioError

    command = shlex.join(["voxkit", "chat", *(["--transcribe"] if args.transcribe else [args.question]), "--audio", "-"])
    if sys.stdin is None or sys.stdin.isatty():
        raise VoxkitError(f"--audio - reads an audio file from standard input, but nothing is piped to it ({command} < talk.wav)")
    data = sys.stdin.buffer.read()
    if not data:
        raise VoxkitError("--audio -: stdin is empty: no audio received")
    refusal = container_refusal(data[:HEAD_BYTES], command, whole=True, raw=None)
    if refusal is not None:
        raise AudioError(f"--audio -: {refusal}")
    try:
        return load_audio(io.BytesIO(data), SAMPLE_RATE)
    except AudioError as err:
        if audio_container(data[:HEAD_BYTES]) is not None:
            raise AudioError(f"--audio -: {str(err).replace(' <stream>', '')}") from None
        raise AudioError("--audio -: stdin is not an audio file (WAV, FLAC, MP3, Ogg, AIFF); raw PCM needs a header "
                         f"with its rate: ffmpeg -f s16le -ar 16000 -ac 1 -i - -f wav - | {command}") from None


@contextlib.contextmanager
def _named_parts(args: argparse.Namespace) -> Iterator[None]:
    """Rewrite an error of the chat API that names "message M, part P" (in the messages this command
    built: the --system message, then the user's clips and question) into the argument the user
    gave: ``--system``, ``--audio NAME`` or the question."""
    try:
        yield
    except VoxkitError as err:
        found = re.match(r"message (\d+), part (\d+): (.*)", str(err), re.S)
        if found is None:
            raise
        message, part, rest = int(found[1]), int(found[2]), found[3]
        if args.system is not None and message == 0:
            what = "--system"
        else:
            what = f"--audio {args.audio[part]}" if part < len(args.audio) else "the question"
        raise type(err)(f"{what}: {rest}") from None


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
    if args.audio.count("-") > 1:
        raise VoxkitError(f"--audio - is given {args.audio.count('-')} times: stdin holds one audio file; give the others as files")
    from voxkit.chat.api import DEFAULT_MAX_AUDIOS

    if len(args.audio) > DEFAULT_MAX_AUDIOS:
        raise VoxkitError(f"--audio is given {len(args.audio)} times: the model takes at most {DEFAULT_MAX_AUDIOS} clips a question")
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
        from voxkit.cli.outputs import write_text

        write_text(args.json, json.dumps(out, indent=1))  # complete or absent: a Ctrl-C leaves no half report
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
