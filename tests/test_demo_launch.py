"""Starting the voice-cloning demo (demos/tts_gradio.py): where it can listen, the reference window
the page states, and the temporary files it leaves (none, once it stops).

Every bind failure must read as its own reason in one line (an address of another machine, a host
name that does not resolve, a busy port, a privileged port), not as Gradio's "Cannot find empty
port"; and the demo script's own ``main()`` checks the port as ``voxkit demo`` does.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cli_helpers import one_line_error, run_cli
from ports import free_port
from tts_helpers import tiny_tts_folder
from voxkit.cli import demo as demo_cli
from voxkit.cli import serving
from voxkit.errors import VoxkitError
from voxkit.tts.api import Speaker

# gradio's queue calls pandas in ways pandas 3 deprecates: not this app's concern
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
ELSEWHERE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never an address of this machine
UNKNOWN = "nonexistent.invalid"  # .invalid never resolves (RFC 6761)


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return demo_cli.load_app("tts")  # the loader `voxkit demo tts` uses


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts"))


@pytest.fixture(scope="module")
def speaker(model_dir: Path) -> Speaker:
    return Speaker.from_pretrained(model_dir)


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Temporary folders go to this test's own folder, so that what the demo leaves there can be counted."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])




def fake_speaker(frames: int) -> Any:
    """What the events read of a Speaker before the first take: its reference window and its rate."""
    fake = SimpleNamespace(model=SimpleNamespace(args=SimpleNamespace(max_reference_frames=frames)), codec=SimpleNamespace(frame_rate=12.5),
                           sample_rate=24000)
    fake.max_reference_seconds = Speaker.max_reference_seconds.fget(fake)  # type: ignore[attr-defined]
    fake.reference_range = lambda: Speaker.reference_range(fake)  # the API's own wording of the window
    return fake


# ----------------------------------------------------------------------------- where the demo can listen


@pytest.mark.parametrize(("host", "expected"), [
    (ELSEWHERE, f"{ELSEWHERE} is not an address of this machine"),
    (UNKNOWN, f"unknown host name '{UNKNOWN}'"),
    ("a..b", "unknown host name 'a..b'"),
])
def test_demo_command_names_the_real_bind_failure(model_dir: Path, capsys: pytest.CaptureFixture[str], host: str, expected: str) -> None:
    code, _, err = run_cli(["demo", "tts", "--model", str(model_dir), "--host", host, "--port", str(free_port())], capsys)
    line = one_line_error(err)  # and no uvicorn lines before it
    assert code == 2 and expected in line and "in use" not in line, line


def test_a_busy_port_is_named_as_such(demo: ModuleType, model_dir: Path, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["demo", "tts", "--model", str(model_dir), "--port", str(busy_port)], capsys)
    assert code == 2 and f"port {busy_port} is in use (choose another with --port)" in one_line_error(err)
    with pytest.raises(VoxkitError, match=f"port {busy_port} is in use"):
        serving.check_address("0.0.0.0", busy_port)  # every interface includes the busy one


def test_a_privileged_port_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing(socket.socket):  # what bind() does for a user who may not open ports below 1024
        def bind(self, address: Any) -> None:
            raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(serving.socket, "socket", Refusing)
    with pytest.raises(VoxkitError, match="port 80 is below 1024, which needs administrator rights"):
        serving.check_address("127.0.0.1", 80)
    assert serving.bind_problem("127.0.0.1", 8080) == "permission denied (Permission denied)"


def test_launch_checks_the_address_before_gradio(demo: ModuleType, speaker: Speaker, own_tmp: Path) -> None:
    app = demo.build_app(speaker)
    with pytest.raises(VoxkitError, match=f"cannot serve on {ELSEWHERE}:[0-9]+: {ELSEWHERE} is not an address"):
        demo.launch(app, host=ELSEWHERE, port=free_port(), block=False)
    with pytest.raises(VoxkitError, match="port must be between 1 and 65535, got 0"):
        demo.launch(app, port=0, block=False)
    assert not list(own_tmp.glob("voxkit-tts-demo-*"))  # a launch that fails leaves no folder


@pytest.mark.parametrize("port", ["-1", "0", "99999"])
def test_demo_script_checks_the_port_like_the_command(demo: ModuleType, model_dir: Path, capsys: pytest.CaptureFixture[str],
                                                      port: str) -> None:
    assert demo.main(["--model", str(model_dir), "--port", port]) == 2
    assert f"tts_gradio: error: --port must be between 1 and 65535, got {port}" == one_line_error(capsys.readouterr().err)
    code, _, err = run_cli(["demo", "tts", "--model", str(model_dir), "--port", port], capsys)
    assert code == 2 and f"--port must be between 1 and 65535, got {port}" in one_line_error(err)


# ----------------------------------------------------------------------------- the reference window


@pytest.mark.parametrize(("frames", "window"), [(375, "3-30 s"), (500, "3-30 s"), (125, "3-10 s"), (40, "3-3.2 s"), (25, "1-2 s")])
def test_reference_window_is_the_models(demo: ModuleType, frames: int, window: str) -> None:
    assert demo.reference_window(fake_speaker(frames)) == window


def test_page_and_messages_state_the_loaded_models_window(demo: ModuleType, speaker: Speaker, own_tmp: Path) -> None:
    app = demo.build_app(speaker)  # the tiny model keeps 40 frames: 3.2 s
    texts = [str(c.get("props", {}).get(key, "")) for c in app.config["components"] for key in ("label", "value")]
    assert any(t == "Reference voice (3-3.2 s)" for t in texts), texts
    assert any("Upload or record 3-3.2 s of a voice" in t for t in texts), texts
    assert not any("3-30" in t for t in texts)
    with pytest.raises(demo.gr.Error, match=r"reference clip of the voice \(3-3\.2 s\)"):
        app.demo_events.speak(None, "", "Hello.", "en", demo.UPLOADED, 1, False, 2, 1.2, 1.0)


# ----------------------------------------------------------------------------- temporary files


def test_takes_are_capped_and_their_folder_goes_with_the_events(demo: ModuleType, own_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_TAKES", 3)
    events = demo.DemoEvents(fake_speaker(40))
    assert not list(own_tmp.glob("voxkit-tts-demo-*"))  # made at the first take, not before
    paths = [Path(events._save(np.zeros(2400, np.float32), seed)) for seed in range(5)]
    folder = events.out_dir
    assert folder.parent == own_tmp and sorted(folder.iterdir()) == sorted(paths[-3:])  # only the last MAX_TAKES
    events.close()
    assert not folder.exists()
    events.close()  # twice is harmless


def test_a_given_folder_is_kept_but_capped(demo: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_TAKES", 2)
    events = demo.DemoEvents(fake_speaker(40), tmp_path / "takes")
    (tmp_path / "takes").mkdir()
    paths = [Path(events._save(np.zeros(2400, np.float32), seed)) for seed in range(4)]
    events.close()
    assert sorted((tmp_path / "takes").iterdir()) == sorted(paths[-2:])


def test_closing_the_app_deletes_its_takes(demo: ModuleType, speaker: Speaker, own_tmp: Path) -> None:
    app = demo.build_app(speaker)
    demo.launch(app, port=free_port(), block=False)
    try:
        path = Path(app.demo_events._save(np.zeros(2400, np.float32), 1))
        assert path.is_file()
    finally:
        app.close()
    assert not path.parent.exists()


def test_the_takes_folder_goes_when_the_process_exits(tmp_path: Path) -> None:
    script = f"""
import tempfile
from types import SimpleNamespace as NS
import numpy as np
from voxkit.cli.demo import load_app
tempfile.tempdir = {str(tmp_path)!r}
speaker = NS(model=NS(args=NS(max_reference_frames=40)), codec=NS(frame_rate=12.5), sample_rate=24000, reference_range=lambda: "1-3.2 s")
events = load_app("tts").DemoEvents(speaker)
print(events._save(np.zeros(2400, np.float32), 1))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    take = Path(done.stdout.strip().splitlines()[-1])
    assert take.parent.parent == tmp_path and not take.parent.exists()
