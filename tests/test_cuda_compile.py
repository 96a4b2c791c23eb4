"""The CUDA sources in cuda/ compile, on any machine with nvcc (no GPU needed).

Why: voxkit builds the kernels just-in-time, and only on a CUDA machine, so a syntax error or a
template that fails to instantiate would otherwise surface on the first GPU run, where the ops
quietly fall back to the PyTorch references. Each .cu is compiled to an object on its own (they
include no torch header, so this is quick); binding.cpp, the only file with torch headers, gets a
host-compiler syntax check against the installed torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CUDA_DIR = Path(__file__).resolve().parents[1] / "cuda"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))

# What torch.utils.cpp_extension adds to every nvcc command of a JIT build: without the implicit
# half / bfloat16 conversions, so a kernel relying on one fails here rather than there.
TORCH_NVCC_FLAGS = [
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "--expt-relaxed-constexpr",
]


def find_nvcc() -> str | None:
    """nvcc on PATH, else in $CUDA_HOME/bin, else in /usr/local/cuda/bin."""
    found = shutil.which("nvcc")
    if found:
        return found
    candidates = [Path(home) / "bin" / "nvcc" for home in [os.environ.get("CUDA_HOME")] if home]
    candidates.append(Path("/usr/local/cuda/bin/nvcc"))
    return next((str(path) for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


@pytest.fixture(scope="module")
def nvcc() -> str:
    path = find_nvcc()
    if path is None:
        reason = "nvcc is missing (not on PATH, nor in $CUDA_HOME/bin or /usr/local/cuda/bin)"
        if os.environ.get("VOXKIT_REQUIRE_NVCC") == "1":
            pytest.fail(f"{reason}, and VOXKIT_REQUIRE_NVCC=1 requires it")
        pytest.skip(reason)
    return path


def cuda_include_dir(nvcc: str) -> Path:
    """The toolkit's include dir, as nvcc itself resolves it: nvcc may be a wrapper script outside
    the toolkit (/usr/local/bin/nvcc), so its own path says nothing about where the headers are."""
    dry = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull], capture_output=True, text=True)
    top = re.search(r"^#\$ TOP=(.+)$", dry.stdout + dry.stderr, flags=re.MULTILINE)
    if top:
        return Path(top.group(1).strip()).resolve() / "include"
    return Path(nvcc).resolve().parents[1] / "include"


def pip_cuda_include_dirs() -> list[str]:
    """Headers of the CUDA libraries torch's wheels ship (site-packages/nvidia/*/include): torch's
    CUDA headers include cuBLAS and cuSPARSE, which a compiler-only toolkit may lack."""
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    return sorted(str(path) for root in roots for path in Path(root).glob("*/include") if path.is_dir())


def run_compiler(command: list[str | Path], what: str) -> None:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    assert result.returncode == 0, f"{what} failed ({' '.join(map(str, command))}):\n{result.stderr}{result.stdout}"


def test_cuda_sources_are_found() -> None:
    assert CU_FILES, f"no .cu files in {CUDA_DIR}"
    assert (CUDA_DIR / "binding.cpp").is_file()


@pytest.mark.parametrize("source", CU_FILES, ids=[path.name for path in CU_FILES])
def test_cu_file_compiles(source: Path, nvcc: str, tmp_path: Path) -> None:
    command = [nvcc, "-c", "-arch=sm_90", "-std=c++17", "-O3", *TORCH_NVCC_FLAGS, "-o", tmp_path / f"{source.stem}.o", source]
    run_compiler(command, f"nvcc {source.name}")


def test_every_cu_file_is_built() -> None:
    """The loader builds a fixed list of sources: a new .cu file must join it."""
    from voxkit.ops import cuda_kernels

    assert sorted(p.name for p in CU_FILES) == sorted(n for n in cuda_kernels.SOURCES if n.endswith(".cu"))


def test_extension_builds_links_and_imports(nvcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The JIT build voxkit runs on a GPU machine, here for sm_90 without a GPU: binding.cpp against
    the installed torch's headers, every kernel, the link, and the import of the module; its
    checks then refuse CPU tensors with a message, not a crash."""
    import torch
    from torch.utils import cpp_extension

    from voxkit.ops import cuda_kernels

    if shutil.which("ninja") is None:
        reason = "ninja is missing: torch's JIT builds need it (scripts/setup.sh installs ninja-build)"
        if os.environ.get("VOXKIT_REQUIRE_NVCC") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    # torch guessed the toolkit from nvcc's place on PATH, which may be a wrapper outside it
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(cuda_include_dir(nvcc).parent))
    sources = [CUDA_DIR / name for name in cuda_kernels.SOURCES]
    module = cuda_kernels.build(sources, tmp_path, "9.0", include_dirs=pip_cuda_include_dirs())
    assert module.max_packs_per_row() == cuda_kernels.MAX_PACKS_PER_ROW
    with pytest.raises(RuntimeError, match="must be a CUDA tensor"):
        module.rms_norm(torch.zeros(2, 8), torch.ones(8), 1e-5)
    with pytest.raises(RuntimeError, match="must be a CUDA tensor"):
        module.rope(torch.zeros(1, 1, 2, 4), torch.ones(1, 2, 2), torch.zeros(1, 2, 2), False, None)
