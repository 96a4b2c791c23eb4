"""voxkit's small C kernels for the CPU, built with the machine's C compiler on first use.

Why C through ctypes rather than a torch C++ extension: these kernels work on raw float pointers
and need none of torch's headers, so a build takes a fraction of a second and only needs ``cc``
(a torch extension build takes tens of seconds). Each build is compiled for this CPU
(``-march=native``) and cached under ``$VOXKIT_CACHE_DIR`` (default ``~/.cache/voxkit``) by a hash
of the source, the compiler, its flags and the CPU's feature list, so a home folder shared by
different machines never loads code built for another CPU. A failed build (no compiler, an
unknown flag) is logged once and the caller keeps its PyTorch reference.

Builds in one process take turns (:data:`_BUILD_LOCK`): a server whose threads load models at
once would otherwise run the compiler once per thread for the same library; the second thread
waits and then finds the first one's build in the cache. Builds in different processes are kept
apart by the atomic rename in :func:`build`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("voxkit.ops")

SOURCES = Path(__file__).resolve().parent / "csrc"
DEFAULT_FLAGS = ("-O3", "-march=native", "-shared", "-fPIC")
_BUILD_LOCK = threading.Lock()  # one build at a time in this process (see the module doc)


def cache_dir() -> Path:
    root = os.environ.get("VOXKIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "voxkit")
    return Path(root) / "kernels"


def _cpuinfo(keys: tuple[str, ...]) -> list[str] | None:
    """The lines of /proc/cpuinfo that start with one of ``keys``; None where it cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return [line for line in f if line.startswith(keys)]
    except OSError:
        return None


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo, else what the platform module says), or "CPU".

    Why here: the kernels' cache key reads the same file, and voxkit.ops sits below the modules that
    print the name (``voxkit env``, the benchmarks' machine line), so this is the one reader of it.
    """
    lines = _cpuinfo(("model name",)) or []
    return next((line.partition(":")[2].strip() for line in lines), "") or platform.processor() or "CPU"


def _cpu_signature() -> str:
    """The CPU's model and feature flags (what ``-march=native`` compiles for)."""
    lines = _cpuinfo(("model name", "flags", "Features", "CPU part"))
    if lines is None:
        return platform.processor() or platform.machine()
    return "".join(sorted(set(lines)))


@functools.cache
def _compiler_version(compiler: tuple[str, ...]) -> str:
    """The compiler's own description (an upgrade rebuilds the kernels)."""
    try:
        result = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=30, check=False)
        return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _sources_text() -> list[str]:
    """Every kernel source (a kernel may include another), so that an edit anywhere rebuilds."""
    return [f"{p.name}\n{p.read_text()}" for p in sorted(SOURCES.glob("*.[ch]"))]


def build(name: str, flags: Sequence[str] = DEFAULT_FLAGS) -> Path | None:
    """Compile ``csrc/{name}.c`` into a cached shared library; its path, or None if the build failed."""
    source = SOURCES / f"{name}.c"
    compiler = shlex.split(os.environ.get("CC", "cc"))  # CC may carry a wrapper or options ("ccache gcc")
    if not compiler or shutil.which(compiler[0]) is None:
        log.info("voxkit kernel %s: no C compiler (%s), using the PyTorch reference", name, " ".join(compiler))
        return None
    key = hashlib.sha256(
        "\0".join([*_sources_text(), *compiler, _compiler_version(tuple(compiler)), *flags, platform.machine(), _cpu_signature()]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build next to the target and rename: concurrent processes never load a half-written file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
    except OSError as err:
        log.info("voxkit kernel %s: cannot write to %s (%s), using the PyTorch reference", name, target.parent, err)
        return None
    try:
        result = subprocess.run(
            [*compiler, *flags, "-o", tmp, str(source)], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log.warning("voxkit kernel %s: build failed, using the PyTorch reference:\n%s", name, result.stderr.strip())
            return None
        os.chmod(tmp, 0o755)  # mkstemp made it private; a shared cache folder must let others load it
        os.replace(tmp, target)
        return target
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("voxkit kernel %s: build failed (%s), using the PyTorch reference", name, err)
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def load(name: str, flags: tuple[str, ...] = DEFAULT_FLAGS) -> ctypes.CDLL | None:
    """The built library ``name`` (once per process and flags), or None where it cannot be built.

    ``functools.cache`` does not hold back a second thread that calls before the first returns,
    so the build itself is what takes turns: the threads that waited find the first one's library
    in the cache folder instead of compiling it again.
    """
    with _BUILD_LOCK:
        path = build(name, flags)
    if path is None:
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError as err:
        log.info("voxkit kernel %s: cannot load %s (%s), using the PyTorch reference", name, path, err)
        return None
