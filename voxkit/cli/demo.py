"""``voxkit demo tts``: the voice-cloning app in the browser (demos/tts_gradio.py).

    voxkit demo tts                                   # the bundled model on http://127.0.0.1:7860
    voxkit demo tts --model DIR --host 0.0.0.0 --port 8000 --device cuda

The app itself lives in demos/ beside the other demos, a thin layer over ``voxkit.Speaker``; this
command checks the options and that Gradio is installed (the ``demo`` extra), then serves it until
interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

from voxkit.cli.flags import check_port, check_tts_model
from voxkit.errors import VoxkitError

APPS = {"tts": "tts_gradio"}  # what `voxkit demo NAME` serves -> its file in demos/
DEMOS = Path(__file__).resolve().parents[2] / "demos"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="serve a browser demo (tts: voice cloning)")
    p.add_argument("app", choices=sorted(APPS), help="which demo: tts (clone a voice, speak a text)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the bundled model, where this install has one)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link (off by default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxkit.devices import usable_device

    check_port(args.port)  # the check the demo script's own main() runs
    usable_device(args.device)
    require_gradio()  # both cheap, before Gradio's import, which takes long enough to wait for an app that cannot start
    check_tts_model(args.model)
    module = load_app(args.app)
    module.serve(args.model, host=args.host, port=args.port, share=args.share, device=args.device)
    return 0


def require_gradio() -> None:
    """Gradio's absence as one line (looked up, not imported)."""
    if importlib.util.find_spec("gradio") is None:
        raise VoxkitError("the demo needs Gradio: pip install 'voxkit[demo]'")


def load_app(name: str) -> ModuleType:
    """Import demos/<file>.py, after checking for Gradio so that its absence is one line, not an ImportError."""
    require_gradio()
    path = DEMOS / f"{APPS[name]}.py"
    if not path.is_file():
        raise VoxkitError(f"{path} is missing: the demos come with voxkit's source tree (git clone, then pip install -e '.[demo]')")
    spec = importlib.util.spec_from_file_location(f"voxkit_demo_{APPS[name]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
