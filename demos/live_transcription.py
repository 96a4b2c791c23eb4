"""Live transcription demo: a file paced at real time (or the microphone), with tentative words.

    python demos/live_transcription.py voxkit/assets/samples/en.flac
    python demos/live_transcription.py --mic          # needs: pip install 'voxkit[mic]'

Committed words are printed normally; the word still being written is shown dimmed after them and
rewritten in place as it grows (a thin layer over ``voxkit.Transcriber.stream``).
"""

from __future__ import annotations

import argparse
import sys
import time

import voxkit
from voxkit.audio.constants import ASR_SAMPLE_RATE, ASR_SAMPLES_PER_STEP
from voxkit.audio.io import load_audio
from voxkit.audio.stream import read_microphone

DIM, RESET = "\033[2m", "\033[0m"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("audio", nargs="?", help="audio file (default: the microphone with --mic)")
    ap.add_argument("--mic", action="store_true")
    ap.add_argument("--delay-ms", type=int, default=480)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    if not args.mic and not args.audio:
        ap.error("give an audio file or --mic")
    stream = voxkit.Transcriber(args.model, delay_ms=args.delay_ms, threads=1).stream()
    if args.mic:
        chunks = read_microphone()
    else:
        wav = load_audio(args.audio, ASR_SAMPLE_RATE).numpy()
        step = ASR_SAMPLES_PER_STEP  # one 80 ms step per push, as a microphone delivers it
        chunks = (wav[i : i + step] for i in range(0, len(wav), step))
    start, fed, tentative = time.perf_counter(), 0.0, ""

    def show(events: list) -> None:
        nonlocal tentative
        for ev in events:
            if ev.kind == "word":
                sys.stdout.write("\b" * len(tentative) + " " * len(tentative) + "\b" * len(tentative) + ev.text + " ")
                tentative = ""
            elif ev.kind == "delta":
                sys.stdout.write("\b" * len(tentative) + DIM + ev.text + RESET)
                tentative = ev.text
        sys.stdout.flush()

    try:
        for chunk in chunks:
            fed += len(chunk) / ASR_SAMPLE_RATE
            time.sleep(max(0.0, fed - (time.perf_counter() - start)) if not args.mic else 0.0)
            show(stream.push(chunk))
    except KeyboardInterrupt:
        pass
    show(stream.finish())
    print()


if __name__ == "__main__":
    main()
