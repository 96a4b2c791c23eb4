"""What a non-editable install gets: the wheel holds the bundled model, the samples and the sources
that voxkit compiles at run time (the CPU step's C file, the CUDA kernels), as well as the code.

Why: an editable install reads them from the checkout, so the rest of the suite would pass with a
wheel that lacks them; the CUDA sources were missing from the wheel, and the kernels then could not
build on a GPU machine where voxkit was installed with pip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from voxkit.ops import cuda_kernels

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOMS = ("voxkit", "lm", "asr", "codec", "tts", "cuda")  # pyproject's package-dir


def test_the_wheel_holds_the_model_the_samples_and_the_kernel_sources(tmp_path: Path) -> None:
    # built from a copy: setuptools leaves build/ in the tree it builds, and a stale build/ would
    # carry old files into the next wheel
    tree = tmp_path / "tree"
    for name in ("pyproject.toml", "README.md"):
        tree.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    for room in PACKAGE_ROOMS:
        shutil.copytree(ROOT / room, tree / room, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(tree)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("voxkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    cuda = {f"voxkit/cuda/{name}" for name in (*cuda_kernels.SOURCES, *cuda_kernels.HEADERS)}
    assert cuda <= names, sorted(cuda - names)
    model = {f"voxkit/assets/realtime-tiny/{p.name}" for p in (ROOT / "voxkit/assets/realtime-tiny").iterdir()}
    samples = {f"voxkit/assets/samples/{p.name}" for p in (ROOT / "voxkit/assets/samples").iterdir()}
    csrc = {f"voxkit/ops/csrc/{p.name}" for p in (ROOT / "voxkit/ops/csrc").glob("*.c")}
    assert model | samples | csrc <= names, sorted((model | samples | csrc) - names)
    for package in ("lm", "asr", "codec", "tts"):  # the rooms that live outside voxkit/ in the checkout
        assert f"voxkit/{package}/__init__.py" in names


def test_an_installed_wheel_finds_its_own_kernel_sources(tmp_path: Path) -> None:
    """source_dir() takes voxkit/cuda/ of an installed package when it is there, the checkout's cuda/ otherwise."""
    fake = tmp_path / "voxkit"
    (fake / "ops").mkdir(parents=True)
    (fake / "cuda").mkdir()
    (fake / "cuda" / cuda_kernels.SOURCES[0]).write_text("// the binding")
    module = fake / "ops" / "cuda_kernels.py"
    module.write_text((ROOT / "voxkit/ops/cuda_kernels.py").read_text(encoding="utf-8"), encoding="utf-8")
    probe = "import importlib.util, sys; spec = importlib.util.spec_from_file_location('ck', sys.argv[1]); " \
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.source_dir())"
    out = subprocess.run([sys.executable, "-c", probe, str(module)], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(fake / "cuda")
    assert cuda_kernels.source_dir() == ROOT / "cuda"  # this checkout: an editable install
