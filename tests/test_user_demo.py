"""The voice-cloning demo (demos/tts_gradio.py) as a person meets it: the page after a preset was
tried, clips the browser offers but voxkit cannot read, an IPv6 address, --share on a machine with no
way out, and the screenshot script's mistakes.

All on a tiny random model (its speech is noise). The browser tests need Debian's chromium and
chromium-driver and skip, saying so, where they are absent.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

from ports import free_port
from tts_helpers import load_screenshot_script, served_demo, tiny_tts_folder
from voxkit.cli import demo as demo_cli
from voxkit.tts.api import Speaker

# gradio's queue calls pandas in ways pandas 3 deprecates: not this app's concern
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
TEXT = "Hello there."


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
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts"))


@pytest.fixture(scope="module")
def speaker(model_dir: Path) -> Speaker:
    return Speaker.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, speaker: Speaker) -> dict[str, Path]:
    """A clip the model takes whole (3.1 s of a tone), a silent one, and text saved as .m4a."""
    folder = tmp_path_factory.mktemp("clips")
    rate = speaker.sample_rate
    t = np.arange(int(3.1 * rate)) / rate
    paths = {"good": folder / "good.wav", "silent": folder / "silent.wav", "m4a": folder / "memo.m4a"}
    sf.write(paths["good"], (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate)
    sf.write(paths["silent"], np.zeros(t.size, np.float32), rate)
    paths["m4a"].write_bytes(b"\x00\x00\x00\x20ftypM4A not really, and not audio voxkit reads")
    return paths


@pytest.fixture(scope="module")
def screenshot_script() -> ModuleType:
    return load_screenshot_script()


@pytest.fixture(scope="module")
def served(demo: ModuleType, speaker: Speaker) -> Any:
    with served_demo(demo, speaker) as url:
        yield url


@pytest.fixture
def driver(screenshot_script: ModuleType) -> Any:
    why = screenshot_script.missing_browser()
    if why is not None:
        pytest.skip(why)
    browser = screenshot_script.browser()
    yield browser
    browser.quit()




# ----------------------------------------------------------------------------- a clip after a preset


def test_a_clip_given_after_a_preset_is_the_voice_used(demo: ModuleType, speaker: Speaker, served: str, clips: dict[str, Path],
                                                        driver: Any) -> None:
    """A person who tried a preset, then uploads their own clip, hears their clip: the upload points
    the voice menu at it (the preset used to stay selected and win without a word)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    menu = "#voice input"
    driver.get(served)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, menu)).click()
    preset = speaker.voices[0]
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#voice li[aria-label='{preset}']")).click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, menu).get_attribute("value") == preset)
    driver.find_element(By.CSS_SELECTOR, "#reference input[type=file]").send_keys(str(clips["silent"]))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#reference [data-testid=waveform-controls]"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, menu).get_attribute("value") == demo.UPLOADED)
    # and the take is of the clip: this one is silent, which the preset is not
    driver.find_element(By.CSS_SELECTOR, "#text textarea").send_keys(TEXT)
    driver.find_element(By.ID, "generate").click()
    said = wait.until(lambda d: d.execute_script(
        "const t = document.querySelector('[data-testid=toast-body].error [data-testid=toast-text]'); return t && t.textContent;"))
    assert said.startswith("The reference is silent"), said


def test_clearing_the_clip_leaves_the_voice_menu_alone(demo: ModuleType, speaker: Speaker, clips: dict[str, Path]) -> None:
    events = demo.DemoEvents(speaker)
    assert events.use_clip(str(clips["good"]))["value"] == demo.UPLOADED
    assert events.use_clip(None) == gr.skip()  # a cleared box: the menu stays where the person put it


# ----------------------------------------------------------------------------- clips voxkit cannot read


def test_an_unreadable_upload_says_which_files_are_read(demo: ModuleType, speaker: Speaker, clips: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """The picker takes any audio type (an M4A voice memo too); the refusal says what to give instead,
    and every type it names is one the model's Speaker reads."""
    events = demo.DemoEvents(speaker, tmp_path / "takes")
    with pytest.raises(gr.Error) as caught:
        events.speak(str(clips["m4a"]), "", TEXT, "en", demo.UPLOADED, 1, False, 2, 1.2, 1.0)
    message = caught.value.message
    assert message.startswith("The reference clip is not readable as audio") and message.endswith(f"upload {demo.READABLE} (or record one)")
    assert "\n" not in message and str(clips["m4a"].parent) not in message
    named = re.findall(r"\b[A-Z0-9]{3,4}\b", demo.READABLE)
    assert named, demo.READABLE
    tone, rate = sf.read(clips["good"], dtype="float32")
    for kind in named:
        path = tmp_path / f"clip.{kind.lower()}"
        sf.write(path, tone, rate, format=kind)
        assert speaker.prepare_voice(str(path)).duration > 3.0, kind


# ----------------------------------------------------------------------------- where and how it is served


def ipv6_loopback() -> str | None:
    """Why ::1 cannot be served on here (None when it can)."""
    if not socket.has_ipv6:
        return "this Python has no IPv6"
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as err:
        return f"no IPv6 loopback on this machine ({err.strerror})"
    return None


def test_a_bare_ipv6_address_serves(demo: ModuleType, speaker: Speaker) -> None:
    """--host ::1 (as ip(8) prints it, no brackets) serves; it used to end in a traceback from the URL Gradio made of it."""
    why = ipv6_loopback()
    if why is not None:
        pytest.skip(why)
    app = demo.build_app(speaker)
    port = free_port()
    try:
        url = demo.launch(app, host="::1", port=port, block=False)
        assert url == f"http://[::1]:{port}/"
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
    finally:
        app.close()


def test_share_without_a_way_out_is_one_line(demo: ModuleType, speaker: Speaker, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--share where gradio.live cannot be reached: one line saying there is no public link and where
    the demo is, instead of a screen of Gradio's download steps above a line that reads as success."""
    import gradio.blocks

    def offline(**_: Any) -> str:
        raise RuntimeError("Could not get share link from Gradio API Server.")  # what Gradio's tunnel set-up raises offline

    monkeypatch.setattr(gradio.blocks.networking, "setup_tunnel", offline)
    app = demo.build_app(speaker)
    try:
        url = demo.launch(app, port=free_port(), share=True, block=False)
    finally:
        app.close()
    out = capsys.readouterr()
    assert "Could not create share link" not in out.out, out.out
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no public link" in lines[0] and lines[0].endswith(f"serving on {url} only"), out.err


# ----------------------------------------------------------------------------- the screenshot script


def test_screenshot_script_names_a_missing_reference(screenshot_script: ModuleType, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-clip.wav"
    started = time.monotonic()
    assert screenshot_script.main(["--reference", str(missing), "-o", str(tmp_path / "shot.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"screenshot_tts_demo: --reference {missing}: no such file"
    assert time.monotonic() - started < 5  # said before a model, a server or a browser starts


def test_screenshot_script_names_a_bad_model_folder(screenshot_script: ModuleType, clips: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    why = screenshot_script.missing_browser()
    if why is not None:
        pytest.skip(why)  # the browser is checked before the model is loaded
    missing = tmp_path / "no-such-model"
    assert screenshot_script.main(["--model", str(missing), "--reference", str(clips["good"]), "-o", str(tmp_path / "shot.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("screenshot_tts_demo: ") and str(missing) in lines[0], lines


def test_screenshot_drive_reports_the_pages_error_at_once(screenshot_script: ModuleType, served: str, clips: dict[str, Path],
                                                          driver: Any) -> None:
    """A take the page refuses ends drive() with the page's words, not a wait for the timeout."""
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="^the page says: The reference is silent"):
        screenshot_script.drive(driver, served, clips["silent"], TEXT, timeout=60)
    assert time.monotonic() - started < 45


def test_an_error_stays_until_closed(demo: ModuleType) -> None:
    """Gradio's error toasts vanish after 10 s: a person who looked away saw only a red badge."""
    err = demo._error("The reference is silent")
    assert err.message == "The reference is silent" and err.duration is None


def test_the_status_says_which_part_is_spoken(demo: ModuleType, speaker: Speaker, clips: dict[str, Path]) -> None:
    events = demo.DemoEvents(speaker)
    text = "One sentence here. And another one there."
    statuses = [status for _, _, _, status in events.stream(str(clips["good"]), None, text, None, demo.UPLOADED, 1, False, 2, 1.0, 1.0)]
    parts = [s for s in statuses if s.startswith("speaking... part")]
    assert parts and parts[0].startswith("speaking... part 1 of 2, ")
