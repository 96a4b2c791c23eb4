"""Audio chat demo: questions about audio, a streamed answer, a transcription and a text-only turn.

    python demos/audio_chat.py                                  # the bundled model (where one ships), voxkit's English sample
    python demos/audio_chat.py talk.wav --model path/to/model   # a model folder (published, transformers or voxkit)

A thin layer over ``voxkit.AudioChat``: messages are OpenAI-style (``{"role", "content"}`` with
text and audio parts), so the same lists can be sent to a chat server unchanged.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import voxkit
from voxkit.errors import VoxkitError

SAMPLES = Path(voxkit.__file__).resolve().parent / "assets" / "samples"


def input_audio(path: Path) -> dict:
    """An OpenAI ``input_audio`` part: the file's bytes as base64, its format from the suffix."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": path.suffix.lstrip(".").lower() or "wav"}}


def run(args: argparse.Namespace) -> None:
    chat = voxkit.AudioChat.from_pretrained(args.model)  # None: the bundled model
    audio, other = Path(args.audio), Path(args.other)
    limit = dict(max_new_tokens=args.max_new_tokens)

    # 1. A question about the audio (greedy: temperature 0).
    messages = [{"role": "user", "content": [
        {"type": "audio", "path": str(audio)},
        {"type": "text", "text": "What is this audio about? Answer in one sentence."},
    ]}]
    answer = chat.generate(messages, **limit)
    print("1. question:", answer)

    # 2. The next turn of the same conversation (the reply goes back as the assistant's message),
    #    streamed as it is generated.
    messages += [{"role": "assistant", "content": answer or "(no answer)"},
                 {"role": "user", "content": "How many words are spoken?"}]
    print("2. streamed: ", end="", flush=True)
    for delta in chat.stream(messages, **limit):
        print(delta, end="", flush=True)
    print()

    # 3. A plain transcription request.
    print("3. transcript:", chat.transcribe(audio, language="en", **limit))

    # 4. Text only: the same model without audio.
    print("4. text only:", chat.generate([{"role": "user", "content": "Say hello in French."}], **limit))

    # 5. Two audios in one message, sent as base64 (what a client of a chat server sends).
    both = [{"role": "user", "content": [
        input_audio(audio), input_audio(other), {"type": "text", "text": "Are these two recordings in the same language?"},
    ]}]
    print("5. two audios:", chat.generate(both, **limit))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("audio", nargs="?", default=str(SAMPLES / "en.flac"), help="audio file (default: voxkit's English sample)")
    ap.add_argument("--other", default=str(SAMPLES / "fr.flac"), help="second audio for step 5 (default: voxkit's French sample)")
    ap.add_argument("--model", metavar="DIR", default=None, help="model folder (default: the model bundled with voxkit)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    for path in (args.audio, args.other):
        if not Path(path).is_file():
            sys.exit(f"error: no audio file {path}")
    try:
        run(args)
    except VoxkitError as err:  # a missing model, an unreadable audio file, ...: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
