"""Voice cloning in the browser: a thin Gradio layer over :class:`voxkit.tts.api.Speaker`.

    python demos/tts_gradio.py                         # the bundled model on http://127.0.0.1:7860
    python demos/tts_gradio.py --model DIR --host 0.0.0.0 --port 8000
    voxkit demo tts                                    # the same app (needs: pip install 'voxkit[demo]')

Upload or record a few seconds of a voice (or pick a preset), type a text, and the speech plays while
it is generated; the whole take is then offered as a WAV file. The page states the loaded model's
reference window (3-30 s for the full model, 3-10 s for the tiny recipe's): a longer clip is trimmed.
Every check of the reference (not audio, silent, too short, too long) is the API's own
(``Speaker.prepare_voice``): the app only turns its errors into messages and its warnings into
notices, so the browser, the Python API and the CLI refuse the same clips with the same words (the
browser adds which files it reads to the message for one it cannot).

The takes are written to a temporary folder made at the first take; only the last ``MAX_TAKES`` are
kept, and the folder is deleted when the server stops or the process exits. Gradio's own copies of
the takes and uploads are deleted after an hour and when the server stops (``GRADIO_CACHE``).

API mode (``gradio_client``), one call per take:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    wav_path, seed, status = client.predict(handle_file("ref.wav"), "", "Hello there.", "en", "(uploaded reference)",
                                            0, True, 7, 1.2, 1.0, api_name="/speak")
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import secrets
import shutil
import sys
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf

from voxkit.cli.flags import check_port
from voxkit.cli.serving import bind_problem, check_address, sigterm_as_interrupt
from voxkit.errors import VoxkitError
from voxkit.tts.api import Speaker, Voice

UPLOADED = "(uploaded reference)"  # the voice menu's entry for the clip in the reference box
MAX_SEED = 2**31 - 1
# What voxkit decodes (libsndfile): the browser's file picker offers every audio type, M4A and WebM included
READABLE = "a WAV, FLAC, MP3 or OGG file"
STREAM_BLOCK_S = 0.5  # audio handed to the player per update: each update is one encoded segment for the browser
MAX_TAKES = 20  # takes kept on disk: older ones are deleted (each is ~0.5 MB; a busy demo would fill /tmp)
# Gradio serves its own copies of the takes and the uploads: swept hourly once an hour old, and all deleted when the server stops
GRADIO_CACHE = (3600, 3600)  # (sweep every N s, delete files older than M s): Blocks' delete_cache
# System fonts only: the default theme pulls its fonts from the web, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class DemoEvents:
    """The app's event functions, kept apart from the layout so that tests can call them directly."""

    def __init__(self, speaker: Speaker, out_dir: str | Path | None = None) -> None:
        """``out_dir``: where takes go (kept afterwards); None: a temporary folder, made at the first
        take (an app whose launch fails leaves nothing behind) and deleted by :meth:`close`."""
        self.speaker = speaker
        self.window = reference_window(speaker)
        self._out_dir = Path(out_dir) if out_dir is not None else None
        self._takes: deque[Path] = deque()
        self._lock = threading.Lock()  # Gradio runs events in worker threads
        self._cleanup: weakref.finalize | None = None

    @property
    def out_dir(self) -> Path:
        """The folder of the takes, made on first use. Its deletion is registered with
        ``weakref.finalize``, which also runs at interpreter exit, so a process that ends without
        :meth:`close` (an exception, ``sys.exit``) still removes it."""
        with self._lock:
            if self._out_dir is None:
                self._out_dir = Path(tempfile.mkdtemp(prefix="voxkit-tts-demo-"))
                self._cleanup = weakref.finalize(self, shutil.rmtree, self._out_dir, ignore_errors=True)
            return self._out_dir

    def close(self) -> None:
        """Delete the temporary folder of the takes (a folder given to the constructor is kept)."""
        with self._lock:
            if self._cleanup is not None:
                self._cleanup()  # a finalizer runs at most once
                self._out_dir, self._cleanup = None, None
            self._takes.clear()

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
            raise _error(f"Upload or record a reference clip of the voice ({self.window}), or pick a preset voice.")
        try:
            return self.speaker.prepare_voice(reference if voice == UPLOADED else voice, reference_text=reference_text or None), used
        except VoxkitError as err:
            raise _error(_plain(err, reference)) from None

    def use_clip(self, reference: str | None) -> Any:
        """Point the voice menu at the reference box when a clip lands in it (uploaded or recorded).

        Why: a preset picked earlier would otherwise stay selected and win silently, so the clip the
        person just gave would be ignored without a word. Clearing the box leaves the menu as it is."""
        return gr.update(value=UPLOADED) if reference else gr.skip()

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
                    status = f"speaking... part {chunks.part} of {chunks.parts}, {sum(map(len, pieces)) / rate:.1f} s"
                    yield _wav_bytes(np.concatenate(block), rate), None, used, status
                    block = []
        except VoxkitError as err:
            raise _error(str(err)) from None
        if block:
            yield _wav_bytes(np.concatenate(block), rate), None, used, "speaking..."
        for note in chunks.notes:  # a sentence the model's context cut short
            gr.Warning(note[:1].upper() + note[1:])
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        yield gr.skip(), self._save(audio, used), used, _status(audio.size / rate, used, [*prepared.warnings, *chunks.notes])

    def speak(self, reference: str | None, reference_text: str | None, text: str, language: str | None, voice: str,
              seed: float | None, randomise: bool, steps: float, cfg: float, speed: float) -> tuple[str, int, str]:
        """The whole take at once, for API clients: (WAV path, seed used, status); the same steps as :meth:`stream`."""
        *_, final = self.stream(reference, reference_text, text, language, voice, seed, randomise, steps, cfg, speed)
        return final[1], final[2], final[3]

    def _save(self, audio: np.ndarray, seed: int) -> str:
        """Write the take as 16-bit WAV, the format every browser plays and every editor opens, and
        delete the takes older than the last ``MAX_TAKES`` (Gradio has served its own copy of them
        by then; an API client that wants to keep a take downloads it)."""
        handle, path = tempfile.mkstemp(prefix=f"voxkit-speech-{seed}-", suffix=".wav", dir=self.out_dir)
        with open(handle, "wb") as f:
            sf.write(f, audio, self.speaker.sample_rate, subtype="PCM_16", format="WAV")
        with self._lock:
            self._takes.append(Path(path))
            while len(self._takes) > MAX_TAKES:
                self._takes.popleft().unlink(missing_ok=True)
        return path


def reference_window(speaker: Speaker) -> str:
    """The reference lengths the loaded model uses, as the page shows them ("3-10 s").

    Why not a fixed "3-30 s": a model keeps at most ``max_reference_frames`` codec frames of the
    reference (30 s for the full model, 10 s for the tiny recipe) and ``Speaker.prepare_voice``
    trims the rest, so a fixed range would invite clips that are cut. The API's own messages say
    the same range (:meth:`Speaker.reference_range`).
    """
    return speaker.reference_range()


def build_app(speaker: Speaker, events: DemoEvents | None = None) -> gr.Blocks:
    """The page: inputs on the left, live playback, the file and the seed used on the right.

    The events (``events``, or new ones) are kept as ``app.demo_events`` so that :func:`launch`
    can delete their takes when the server stops."""
    events = events if events is not None else DemoEvents(speaker)
    with gr.Blocks(title="voxkit voice cloning", analytics_enabled=False, delete_cache=GRADIO_CACHE) as app:
        gr.Markdown(f"## voxkit voice cloning\nUpload or record {events.window} of a voice (or pick a preset), type a text, "
                    "press Generate: the speech plays as it is generated, then the whole take can be downloaded.")
        with gr.Row():
            with gr.Column():
                reference = gr.Audio(sources=["upload", "microphone"], type="filepath", label=f"Reference voice ({events.window})",
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
        reference.change(events.use_clip, reference, voice, queue=False, show_progress="hidden", api_visibility="private")
        generate.click(events.stream, inputs, [live, result, seed_used, status], api_name="speak_stream",
                       api_visibility="undocumented")
        # The API endpoint: the same inputs, the whole take in one answer (a streamed player means nothing to a client).
        gr.Button(visible=False).click(events.speak, inputs, [result, seed_used, status], api_name="speak")
    app.demo_events = events  # type: ignore[attr-defined]
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True) -> str:
    """Serve ``app`` and return its local URL; with ``block`` (the command line) serve until Ctrl-C
    (or SIGTERM). The takes of the app's events are deleted when the server stops (``app.close()``).

    The address is checked first (:func:`check_address`): Gradio reports every failure to start
    as "Cannot find empty port". Gradio's own start-up lines are silenced: they advise editing
    ``launch()``, where this app's user has --port and --share instead.
    """
    port = check_port(port, "port")
    check_address(host, port)
    events = getattr(app, "demo_events", None)
    said = io.StringIO()  # Gradio's own lines about the public link, said again in one line when it fails
    try:
        with contextlib.redirect_stdout(said) if share else contextlib.nullcontext():
            _, url, public = app.launch(server_name=_server_name(host), server_port=port, share=share, prevent_thread_lock=True,
                                        ssr_mode=False, theme=THEME, quiet=True, app_kwargs={"lifespan": _delete_takes_on_stop(events)})
    except OSError:  # the address was free a moment ago: taken since, or another failure of Gradio's server
        raise VoxkitError(f"cannot serve on {host}:{port}: {bind_problem(host, port) or 'the web server did not start'}") from None
    if share and public is None:
        print(f"voice-cloning demo: no public link: {_share_failure(said.getvalue())}; serving on {url} only", file=sys.stderr, flush=True)
    elif said.getvalue():
        print(said.getvalue(), end="", flush=True)
    if block:
        print(f"voice-cloning demo on {url}" + (f" and {public}" if public else "") + " (Ctrl-C stops it)", flush=True)
        with sigterm_as_interrupt():
            app.block_thread()
        if events is not None:
            events.close()
    return url


def serve(model: str | None = None, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, device: str = "cpu") -> None:
    """Load the model and serve the app until interrupted (what ``voxkit demo tts`` runs).

    The port and address are checked before the model loads, so a typo costs no wait."""
    check_address(host, check_port(port))
    launch(build_app(Speaker.from_pretrained(model, device=device)), host=host, port=port, share=share)


def _server_name(host: str) -> str:
    """``host`` as Gradio takes it: an IPv6 address in brackets.

    Why: Gradio writes its own URL as ``http://{host}:{port}/`` and fetches it before it serves, so
    a bare ``::1`` made an invalid URL and a traceback; ``[::1]`` serves on ``http://[::1]:7860/``."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:  # a host name, an IPv4 address, or an IPv6 address already in brackets
        return host


def _share_failure(said: str) -> str:
    """Gradio's several lines on a public link it could not make, as one reason.

    Why: they run to a screen of manual download steps for its tunnel program, printed before the
    line with the local URL, so the one fact that matters (there is no public link) was easy to miss."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("Could not create share link")), lines[0] if lines else "")
    reason = first.removeprefix("Could not create share link").strip(" .:") or "no reason given"
    return f"Gradio could not open its gradio.live tunnel ({reason}; is this machine offline?)"


def _delete_takes_on_stop(events: DemoEvents | None):  # noqa: ANN202 - a FastAPI lifespan factory
    """A FastAPI lifespan that deletes the takes when the server stops (``app.close()``, Ctrl-C)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if events is not None:
                events.close()

    return lifespan


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Voice-cloning demo in the browser.")
    ap.add_argument("--model", default=None, metavar="DIR", help="TTS model folder (default: the bundled model)")
    ap.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ap.add_argument("--share", action="store_true", help="also serve through a public gradio.live link (off by default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    try:
        check_port(args.port)  # the same check as `voxkit demo`: -1, 0 or 99999 is one line, not a traceback
        serve(args.model, host=args.host, port=args.port, share=args.share, device=args.device)
    except VoxkitError as err:
        print(f"tts_gradio: error: {err}", file=sys.stderr)
        return 2
    return 0


def _error(message: str) -> gr.Error:
    """A message for the person at the browser or the client; the server log needs no traceback for a
    bad upload. It stays until closed: Gradio's default of 10 s left a person who looked away with a
    red "Error" badge and no reason."""
    return gr.Error(message, duration=None, print_exception=False)


def _wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """One block as 16-bit WAV bytes: Gradio reads those without a decoder and never rescales them (arrays it would)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _plain(err: VoxkitError, reference: str | None) -> str:
    """The API's message without the upload's temporary path, which means nothing to the person who
    uploaded it; for a file it cannot decode, which files it can (the browser's picker accepts M4A and
    WebM, which voxkit does not read, and the person at the browser has no shell to convert them)."""
    message = str(err)
    if not reference:
        return message
    if message.startswith(f"{reference}: "):
        rest = message[len(reference) + 2:]
        message = f"The{rest[3:]}" if rest.startswith("the reference ") else f"The reference clip is {rest}"
        if rest.startswith("not readable as audio"):  # the picker offers every audio type; say which ones are read
            message += f"; upload {READABLE} (or record one)"
    return message.replace(reference, Path(reference).name)


def _status(seconds: float, seed: int, warnings: list[str]) -> str:
    return "; ".join([f"{seconds:.1f} s of speech, seed {seed}", *warnings])


if __name__ == "__main__":
    sys.exit(main())
