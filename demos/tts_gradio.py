"""Voice cloning in the browser: a thin Gradio layer over :class:`voxkit.tts.api.Speaker`.

    python demos/tts_gradio.py                         # the bundled model on http://127.0.0.1:7860
    python demos/tts_gradio.py --model DIR --host 0.0.0.0 --port 8000
    voxkit demo tts                                    # the same app (needs: pip install 'voxkit[demo]')

Upload or record 3-30 s of a voice (or pick a preset), type a text, and the speech plays while it is
generated; the whole take is then offered as a WAV file. Every check of the reference (not audio,
silent, too short, too long) is the API's own (``Speaker.prepare_voice``): the app only turns its
errors into messages and its warnings into notices, so the browser, the Python API and the CLI
refuse the same clips with the same words.

API mode (``gradio_client``), one call per take:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    wav_path, seed, status = client.predict(handle_file("ref.wav"), "", "Hello there.", "en", "(uploaded reference)",
                                            0, True, 7, 1.2, 1.0, api_name="/speak")
"""

from __future__ import annotations

import argparse
import io
import secrets
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf

from voxkit.errors import VoxkitError
from voxkit.tts.api import Speaker, Voice

UPLOADED = "(uploaded reference)"  # the voice menu's entry for the clip in the reference box
MAX_SEED = 2**31 - 1
STREAM_BLOCK_S = 0.5  # audio handed to the player per update: each update is one encoded segment for the browser
# System fonts only: the default theme pulls its fonts from the web, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class DemoEvents:
    """The app's event functions, kept apart from the layout so that tests can call them directly."""

    def __init__(self, speaker: Speaker, out_dir: str | Path | None = None) -> None:
        self.speaker = speaker
        self.out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="voxkit-tts-demo-"))

    def prepare(self, reference: str | None, reference_text: str | None, voice: str, seed: float | None,
                randomise: bool) -> tuple[Voice, int]:
        """The voice prompt and the seed to use; anything the user must fix is a ``gr.Error`` (a message, no traceback)."""
        if randomise:
            used = secrets.randbelow(MAX_SEED + 1)
        elif seed is None:
            raise _error("Enter a seed, or tick 'Randomise the seed'.")
        elif not 0 <= int(seed) <= MAX_SEED:
            raise _error(f"The seed must be between 0 and {MAX_SEED}, got {int(seed)}.")
        else:
            used = int(seed)
        if voice == UPLOADED and not reference:
            raise _error("Upload or record a reference clip of the voice (3-30 s), or pick a preset voice.")
        try:
            return self.speaker.prepare_voice(reference if voice == UPLOADED else voice, reference_text=reference_text or None), used
        except VoxkitError as err:
            raise _error(_plain(err, reference)) from None

    def stream(self, reference: str | None, reference_text: str | None, text: str, language: str | None, voice: str,
               seed: float | None, randomise: bool, steps: float, cfg: float, speed: float) -> Iterator[tuple[Any, Any, int, str]]:
        """Yield (WAV bytes for the live player, result file, seed used, status) as the speech is generated.

        The player gets blocks of half a second rather than every 80 ms frame: each update becomes one
        encoded segment in the browser, and tiny segments cost more than they gain in latency.
        """
        if not text or not text.strip():
            raise _error("Type the text to speak.")
        prepared, used = self.prepare(reference, reference_text, voice, seed, randomise)
        for warning in prepared.warnings:
            gr.Warning(warning[:1].upper() + warning[1:])
        rate, pieces, block = self.speaker.sample_rate, [], []
        try:
            chunks = self.speaker.stream(text, voice=prepared, language=language or None, steps=int(steps), cfg=float(cfg),
                                         seed=used, speed=float(speed))
            for chunk in chunks:
                pieces.append(chunk)
                block.append(chunk)
                if sum(len(c) for c in block) >= STREAM_BLOCK_S * rate:
                    yield _wav_bytes(np.concatenate(block), rate), None, used, f"speaking... {sum(map(len, pieces)) / rate:.1f} s"
                    block = []
        except VoxkitError as err:
            raise _error(str(err)) from None
        if block:
            yield _wav_bytes(np.concatenate(block), rate), None, used, "speaking..."
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        yield gr.skip(), self._save(audio, used), used, _status(audio.size / rate, used, prepared.warnings)

    def speak(self, reference: str | None, reference_text: str | None, text: str, language: str | None, voice: str,
              seed: float | None, randomise: bool, steps: float, cfg: float, speed: float) -> tuple[str, int, str]:
        """The whole take at once, for API clients: (WAV path, seed used, status); the same steps as :meth:`stream`."""
        *_, final = self.stream(reference, reference_text, text, language, voice, seed, randomise, steps, cfg, speed)
        return final[1], final[2], final[3]

    def _save(self, audio: np.ndarray, seed: int) -> str:
        """Write the take as 16-bit WAV, the format every browser plays and every editor opens."""
        handle, path = tempfile.mkstemp(prefix=f"voxkit-speech-{seed}-", suffix=".wav", dir=self.out_dir)
        with open(handle, "wb") as f:
            sf.write(f, audio, self.speaker.sample_rate, subtype="PCM_16", format="WAV")
        return path


def build_app(speaker: Speaker) -> gr.Blocks:
    """The page: inputs on the left, live playback, the file and the seed used on the right."""
    events = DemoEvents(speaker)
    with gr.Blocks(title="voxkit voice cloning", analytics_enabled=False) as app:
        gr.Markdown("## voxkit voice cloning\nUpload or record 3-30 s of a voice (or pick a preset), type a text, "
                    "press Generate: the speech plays as it is generated, then the whole take can be downloaded.")
        with gr.Row():
            with gr.Column():
                reference = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Reference voice (3-30 s)",
                                     elem_id="reference")
                reference_text = gr.Textbox(label="What the reference says (optional)", elem_id="reference-text")
                voice = gr.Dropdown([UPLOADED, *speaker.voices], value=UPLOADED, label="Voice", elem_id="voice")
                text = gr.Textbox(label="Text to speak", lines=4, elem_id="text")
                language = gr.Dropdown(speaker.languages, value=speaker.languages[0], label="Language", elem_id="language")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                    randomise = gr.Checkbox(True, label="Randomise the seed", elem_id="randomise")
                steps = gr.Slider(1, 32, 7, step=1, label="Flow steps", elem_id="steps")
                cfg = gr.Slider(1.0, 3.0, 1.2, step=0.05, label="CFG strength", elem_id="cfg")
                speed = gr.Slider(0.5, 2.0, 1.0, step=0.05, label="Speed", elem_id="speed")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                live = gr.Audio(label="Live playback", streaming=True, autoplay=True, interactive=False, elem_id="live")
                result = gr.Audio(label="Result (WAV)", type="filepath", format="wav", interactive=False, buttons=["download"],
                                  elem_id="result")
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False, elem_id="seed-used")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        inputs = [reference, reference_text, text, language, voice, seed, randomise, steps, cfg, speed]
        generate.click(events.stream, inputs, [live, result, seed_used, status], api_name="speak_stream",
                       api_visibility="undocumented")
        # The API endpoint: the same inputs, the whole take in one answer (a streamed player means nothing to a client).
        gr.Button(visible=False).click(events.speak, inputs, [result, seed_used, status], api_name="speak")
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True) -> str:
    """Serve ``app`` and return its local URL; with ``block`` (the command line) serve until Ctrl-C.

    Gradio's own start-up lines are silenced: they advise editing ``launch()``, where this app's user
    has --port and --share instead.
    """
    try:
        _, url, public = app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, ssr_mode=False,
                                    theme=THEME, quiet=True)
    except OSError as err:
        why = "the port is in use (choose another with --port)" if "empty port" in str(err) else str(err)
        raise VoxkitError(f"cannot serve on {host}:{port}: {why}") from None
    if block:
        print(f"voice-cloning demo on {url}" + (f" and {public}" if public else "") + " (Ctrl-C stops it)", flush=True)
        app.block_thread()
    return url


def serve(model: str | None = None, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, device: str = "cpu") -> None:
    """Load the model and serve the app until interrupted (what ``voxkit demo tts`` runs)."""
    launch(build_app(Speaker.from_pretrained(model, device=device)), host=host, port=port, share=share)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Voice-cloning demo in the browser.")
    ap.add_argument("--model", default=None, metavar="DIR", help="TTS model folder (default: the bundled model)")
    ap.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--share", action="store_true", help="also serve through a public gradio.live link (off by default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    try:
        serve(args.model, host=args.host, port=args.port, share=args.share, device=args.device)
    except VoxkitError as err:
        print(f"tts_gradio: error: {err}", file=sys.stderr)
        return 2
    return 0


def _error(message: str) -> gr.Error:
    """A message for the person at the browser or the client; the server log needs no traceback for a bad upload."""
    return gr.Error(message, print_exception=False)


def _wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """One block as 16-bit WAV bytes: Gradio reads those without a decoder and never rescales them (arrays it would)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _plain(err: VoxkitError, reference: str | None) -> str:
    """The API's message without the upload's temporary path, which means nothing to the person who uploaded it."""
    message = str(err)
    if not reference:
        return message
    if message.startswith(f"{reference}: "):
        rest = message[len(reference) + 2:]
        message = f"The{rest[3:]}" if rest.startswith("the reference ") else f"The reference clip is {rest}"
    return message.replace(reference, Path(reference).name)


def _status(seconds: float, seed: int, warnings: list[str]) -> str:
    return "; ".join([f"{seconds:.1f} s of speech, seed {seed}", *warnings])


if __name__ == "__main__":
    sys.exit(main())
