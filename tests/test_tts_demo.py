"""The voice-cloning demo (demos/tts_gradio.py): its events, its API mode and a real headless browser.

All on a tiny random model (its speech is noise): what is checked is the app, not the voice. The
browser test needs Debian's chromium and chromium-driver; without them it fails and says to run
scripts/setup.sh, like every other system tool the suite relies on.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import one_line_error, run_cli
from tts_helpers import load_screenshot_script, never_ending, served_demo, tiny_tts_folder
from voxkit.cli import demo as demo_cli
from voxkit.errors import VoxkitWarning
from voxkit.tts.api import Speaker

# gradio's queue calls pandas in ways pandas 3 deprecates: not this app's concern
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
RATE = 24000  # the tiny model's codec rate
TEXT = "Hello there."  # one sentence: at most 61 frames (4.9 s) from the tiny model


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """The tiny model gains nothing from a second thread, and two threads on a busy 2-core machine can be 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return demo_cli.load_app("tts")  # the loader `voxkit demo tts` uses


@pytest.fixture(scope="module")
def speaker(tmp_path_factory: pytest.TempPathFactory) -> Speaker:
    return Speaker.from_pretrained(tiny_tts_folder(tmp_path_factory.mktemp("tts")))


@pytest.fixture(scope="module")
def events(demo: ModuleType, speaker: Speaker, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return demo.DemoEvents(speaker, tmp_path_factory.mktemp("takes"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference uploads, good and bad. The tiny model keeps at most 3.2 s of reference (40 frames)."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)

    def tone(seconds: float) -> np.ndarray:
        t = np.arange(int(seconds * RATE)) / RATE
        return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)

    waves = {"good": tone(3.1), "short": tone(2.0), "long": tone(5.0), "silent": np.zeros(2 * RATE, np.float32), "tiny": tone(0.3)}
    paths = {}
    for name, wave in waves.items():
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], wave, RATE)
    paths["text"] = folder / "notes.wav"  # a text file renamed .wav
    paths["text"].write_text("these are my notes, not audio\n")
    return paths


def speak(events: Any, reference: Path | str | None, *, voice: str = "(uploaded reference)", text: str = TEXT, seed: float | None = 1234,
          randomise: bool = False) -> tuple[str, int, str]:
    return events.speak(None if reference is None else str(reference), "", text, "en", voice, seed, randomise, 3, 1.2, 1.0)


def read_wav(source: str | bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32")
    assert audio.ndim == 1 and audio.size > 0 and np.abs(audio).max() > 0, "no samples, or all zero"
    return audio, rate


# ----------------------------------------------------------------------------- events


@pytest.mark.parametrize(("clip", "expected"), [
    ("text", r"^The reference clip is not readable as audio"),
    ("silent", r"^The reference is silent"),
    ("tiny", r"^The reference is 0\.3 s long; give at least 1 s"),
])
def test_bad_uploads_give_one_clear_message(events: Any, clips: dict[str, Path], clip: str, expected: str) -> None:
    with pytest.raises(gr.Error) as caught:
        speak(events, clips[clip])
    message = caught.value.message  # what the browser shows (str() of a gr.Error is its repr)
    assert re.match(expected, message), message
    assert "Traceback" not in message and "\n" not in message
    assert str(clips[clip].parent) not in message  # the upload's temporary folder means nothing to the user


def test_missing_inputs_say_what_to_do(events: Any, clips: dict[str, Path]) -> None:
    with pytest.raises(gr.Error, match="Upload or record a reference clip"):
        speak(events, None)
    with pytest.raises(gr.Error, match="Type the text"):
        speak(events, clips["good"], text="  ")
    with pytest.raises(gr.Error, match="Enter a seed"):
        speak(events, clips["good"], seed=None)
    with pytest.raises(gr.Error, match="language 'xx' is not supported"):
        events.speak(str(clips["good"]), "", TEXT, "xx", "(uploaded reference)", 1, False, 3, 1.2, 1.0)


@pytest.mark.parametrize(("clip", "expected"), [("short", "only 2.0 s long"), ("long", "5.0 s long; its first 3.2 s are used")])
def test_reference_length_is_guarded_with_a_notice(events: Any, clips: dict[str, Path], clip: str, expected: str) -> None:
    with pytest.warns(UserWarning, match=expected):  # gr.Warning outside a browser session
        _, _, status = speak(events, clips[clip])
    assert expected in status


def test_a_take_cut_by_the_context_is_a_notice(events: Any, speaker: Speaker) -> None:
    """The page says when the model's context, not the model, ended a sentence (it went only to the server's log)."""
    sentence = "This is a long sentence that should take several seconds to say out loud."
    with pytest.warns(UserWarning, match="Sentence 1 of 1 .* was cut short"), warnings.catch_warnings():  # gr.Warning here
        warnings.simplefilter("ignore", VoxkitWarning)  # the API's own warning of the same cut, for the server's log
        with never_ending(speaker.model):
            _, _, status = events.speak(None, "x" * 300, sentence, "en", "demo", 1, False, 7, 1.2, 1.0)
    assert "was cut short" in status


def test_seed_is_echoed_and_reproduces_the_take(events: Any, clips: dict[str, Path]) -> None:
    first, seed, status = speak(events, clips["good"], seed=1234)
    again, _, _ = speak(events, clips["good"], seed=1234)
    assert seed == 1234 and status.endswith("seed 1234")
    audio, rate = read_wav(first)
    assert rate == RATE and np.array_equal(audio, read_wav(again)[0])


def test_randomise_draws_a_new_seed_and_echoes_the_one_used(events: Any, clips: dict[str, Path]) -> None:
    path_a, seed_a, _ = speak(events, clips["good"], seed=1234, randomise=True)
    _, seed_b, _ = speak(events, clips["good"], seed=1234, randomise=True)
    assert len({seed_a, seed_b, 1234}) == 3
    replay, _, _ = speak(events, clips["good"], seed=seed_a)  # the echoed seed gives the same take back
    assert np.array_equal(read_wav(path_a)[0], read_wav(replay)[0])


def test_stream_blocks_join_to_the_downloadable_file(demo: ModuleType, events: Any, clips: dict[str, Path]) -> None:
    updates = list(events.stream(str(clips["good"]), "", TEXT, "en", "(uploaded reference)", 7, False, 3, 1.2, 1.0))
    *blocks, final = updates
    assert blocks and all(isinstance(b[0], bytes) and b[1] is None and b[2] == 7 for b in blocks)
    pieces = [read_wav(b[0])[0] for b in blocks]
    assert all(p.size >= demo.STREAM_BLOCK_S * RATE for p in pieces[:-1])
    assert np.array_equal(np.concatenate(pieces), read_wav(final[1])[0])  # both 16-bit: identical samples
    assert final[2] == 7 and "seed 7" in final[3]


def test_preset_voice_needs_no_upload(events: Any, speaker: Speaker) -> None:
    path, _, _ = speak(events, None, voice=speaker.voices[0])
    assert read_wav(path)[1] == RATE


# ----------------------------------------------------------------------------- voxkit demo tts


def test_demo_command_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = demo_cli.importlib.util.find_spec
    monkeypatch.setattr(demo_cli.importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    code, _, err = run_cli(["demo", "tts"], capsys)
    assert code == 2 and "pip install 'voxkit[demo]'" in one_line_error(err)


@pytest.mark.parametrize(("args", "expected"), [
    (["--port", "70000"], "--port must be between 1 and 65535"),
    (["--model", "/no/such/tts-folder"], "/no/such/tts-folder"),
])
def test_demo_command_refuses_bad_options_in_one_line(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    code, _, err = run_cli(["demo", "tts", *args], capsys)
    assert code == 2 and expected in one_line_error(err)


# ----------------------------------------------------------------------------- served: API mode and a real browser


@pytest.fixture(scope="module")
def screenshot_script() -> ModuleType:
    return load_screenshot_script()


@pytest.fixture(scope="module")
def served(demo: ModuleType, speaker: Speaker) -> Any:
    with served_demo(demo, speaker) as url:
        yield url


def test_api_mode_through_gradio_client(served: str, clips: dict[str, Path]) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served, verbose=False)
    assert "/speak" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    args = ("", TEXT, "en", "(uploaded reference)", 99, False, 3, 1.2, 1.0)
    path, seed, status = client.predict(handle_file(str(clips["good"])), *args, api_name="/speak")
    assert seed == 99 and status.endswith("seed 99") and read_wav(path)[1] == RATE
    with pytest.raises(AppError, match="The reference is silent"):
        client.predict(handle_file(str(clips["silent"])), *args, api_name="/speak")


def test_browser_uploads_generates_and_plays(served: str, clips: dict[str, Path], screenshot_script: ModuleType, tmp_path: Path) -> None:
    why = screenshot_script.missing_browser()
    if why is not None:
        pytest.fail(why)
    driver = screenshot_script.browser()
    try:
        take = screenshot_script.drive(driver, served, clips["good"], TEXT, tmp_path / "tts-demo.png", seed=7)
    finally:
        driver.quit()
    audio, rate = read_wav(take.wav)  # what the result's download link serves
    assert rate == RATE and take.wav_url.startswith(served)
    # the live player decoded the whole streamed take (AAC pads its ends by a few milliseconds)
    assert abs(take.live_duration - audio.size / rate) < screenshot_script.PADDING_S, (take.live_duration, audio.size / rate)
    assert take.seed == "7" and take.status.endswith("seed 7")
    assert (tmp_path / "tts-demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
