"""Shared test fixtures: deterministic seeds and warnings quieted for transformers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# under pytest-xdist the cores are shared between the workers: more threads than cores only thrash
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def load_script() -> Callable[[str], ModuleType]:
    """Import scripts/NAME.py as a module (scripts/ is not a package), for tests of its functions."""

    def load(name: str) -> ModuleType:
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random recogniser saved as a bundle with the byte tokenizer (for CLI tests)."""
    from asr_helpers import tiny_model
    from voxkit.asr.bundle import save_bundle
    from voxkit.tokenizer import ByteTokenizer

    folder = tmp_path_factory.mktemp("asr")
    model = tiny_model()
    model.args.decoder.extra["tokenizer"] = "byte"
    save_bundle(model, ByteTokenizer(), folder)
    return folder


@pytest.fixture(scope="session")
def transcriber() -> object:
    """The bundled recogniser, loaded once for the whole run: a loaded model is shared and never
    written to (tests/test_shared_model.py), so every test that reads it may use the same one."""
    import voxkit

    return voxkit.Transcriber()


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random codec folder (seed 0), as `voxkit export codec` writes one (for codec CLI tests)."""
    from test_codec_cli import tiny_codec_folder

    return tiny_codec_folder(tmp_path_factory.mktemp("codec"))


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of a 255 Hz tone at 16 kHz in a WAV file."""
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    sf.write(path, 0.3 * np.sin(np.arange(16000) / 10), 16000)
    return path
