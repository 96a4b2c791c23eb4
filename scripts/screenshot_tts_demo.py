"""Drive the voice-cloning demo (demos/tts_gradio.py) in headless Chromium and keep a screenshot.

    python scripts/screenshot_tts_demo.py                      # the bundled model -> docs/tts-demo.png
    python scripts/screenshot_tts_demo.py --model DIR --reference ref.wav --text "Hello." -o shot.png

It does what a person does: upload a reference clip, type a text, press Generate, wait for the live
player to hold audio it can play and for the WAV to be offered. tests/test_tts_demo.py runs the same
:func:`drive` on a tiny random model. Needs Debian's chromium and chromium-driver
(scripts/apt-packages.txt) and selenium (the dev extra); nothing is downloaded: selenium is handed
the system chromedriver, so its driver manager never runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PADDING_S = 0.25  # how much shorter than the WAV the streamed (AAC) take may look to the player


class Take(NamedTuple):
    """What the browser ended with: the live player's duration, the WAV behind the download link, the seed and status shown."""

    live_duration: float
    wav_url: str
    wav: bytes
    seed: str
    status: str


def missing_browser() -> str | None:
    """Why the browser cannot run here (None when it can): the message tells how to fix it."""
    absent = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if absent:
        return f"{' and '.join(absent)} not found: run scripts/setup.sh (installs chromium and chromium-driver, scripts/apt-packages.txt)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed: run scripts/setup.sh (the dev extra)"
    return None


def load_demo() -> ModuleType:
    """demos/ is not a package: import the app from its file."""
    spec = importlib.util.spec_from_file_location("tts_gradio", ROOT / "demos" / "tts_gradio.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def browser(width: int = 1280, height: int = 1500):  # -> selenium WebDriver
    """Headless Chromium through the system chromedriver (no driver download, no sandbox: CI runs as root)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: selenium's manager must never fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def drive(driver, url: str, reference: str | Path, text: str, screenshot: str | Path | None = None, *, seed: int | None = None,
          timeout: float = 30.0) -> Take:
    """Upload ``reference``, type ``text`` (and ``seed``, randomise off), press Generate; wait for playable audio and the WAV link."""
    import soundfile as sf
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#reference input[type=file]"))
    upload.send_keys(str(Path(reference).resolve()))  # the hidden file input behind the drop zone
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#reference [data-testid=waveform-controls]"))  # uploaded and shown
    driver.find_element(By.CSS_SELECTOR, "#text textarea").send_keys(text)
    if seed is not None:
        driver.find_element(By.CSS_SELECTOR, "#randomise input[type=checkbox]").click()
        box = driver.find_element(By.CSS_SELECTOR, "#seed input")
        box.clear()
        box.send_keys(str(seed))
    driver.find_element(By.ID, "generate").click()
    # The live player gets a media-source URL once the first block arrives; its duration grows as blocks do.
    duration = "const a = document.querySelector('#live audio'); return a && a.src && a.readyState >= 1 ? a.duration : 0;"

    def playing(d) -> bool:  # an error notice ends the wait at once, with its words, instead of a timeout
        if (said := page_error(d)) is not None:
            raise RuntimeError(f"the page says: {said}")
        return d.execute_script(duration) > 0

    wait.until(playing)  # the player got the first streamed block and can play it
    link = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#result a[download]").get_attribute("href") or None)
    with urllib.request.urlopen(link, timeout=timeout) as response:
        wav = response.read()
    shown_seed = driver.find_element(By.CSS_SELECTOR, "#seed-used input").get_attribute("value") or ""
    status = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value") or None)
    # The player fetches the stream's playlist on its own schedule: wait until it holds the whole take
    # (AAC pads each end by a few milliseconds), and report what it holds if it never does.
    seconds = sf.info(io.BytesIO(wav)).duration
    with contextlib.suppress(TimeoutException):
        wait.until(lambda d: d.execute_script(duration) >= seconds - PADDING_S)
    live = float(driver.execute_script(duration))
    if screenshot is not None:
        driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(screenshot))
    return Take(live_duration=live, wav_url=link, wav=wav, seed=shown_seed, status=status)


def page_error(driver) -> str | None:
    """The words of the error notice the page shows (None when it shows none)."""
    return driver.execute_script(
        "const t = document.querySelector('[data-testid=toast-body].error [data-testid=toast-text]');"
        "return t ? t.textContent.trim() : null;")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="TTS model folder (default: the bundled model)")
    ap.add_argument("--reference", default=str(ROOT / "voxkit" / "assets" / "samples" / "en.flac"))
    ap.add_argument("--text", default="Any voice, cloned from a few seconds of audio, speaks this sentence.")
    ap.add_argument("--seed", type=int, default=1, help="seed of the take (default 1: the same picture each run)")
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "tts-demo.png"))
    args = ap.parse_args(argv)
    # Each mistake is one line before anything starts: a missing reference used to surface as a
    # chromedriver stack trace, and a bad --model as a traceback.
    if not Path(args.reference).is_file():
        print(f"screenshot_tts_demo: --reference {args.reference}: no such file", file=sys.stderr)
        return 2
    if (why := missing_browser()) is not None:
        print(f"screenshot_tts_demo: {why}", file=sys.stderr)
        return 2
    from voxkit.errors import VoxkitError
    from voxkit.tts.api import Speaker

    demo = load_demo()
    try:
        app = demo.build_app(Speaker.from_pretrained(args.model))
        url = demo.launch(app, port=free_port(), block=False)
    except VoxkitError as err:
        print(f"screenshot_tts_demo: {err}", file=sys.stderr)
        return 2
    driver = browser()
    try:
        take = drive(driver, url, args.reference, args.text, args.output, seed=args.seed, timeout=300)
    except RuntimeError as err:  # the page refused the take (drive() read its error notice)
        print(f"screenshot_tts_demo: {err}", file=sys.stderr)
        return 2
    finally:
        driver.quit()
        app.close()
    print(f"{args.output}: live player {take.live_duration:.2f} s; {take.status}")
    return 0


def free_port() -> int:
    """A port no one listens on now (Gradio's own search starts at 7860, which a running demo may hold)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
