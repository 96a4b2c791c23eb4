"""The fused CUDA kernels of ``cuda/`` as implementations of the registry's ops.

Why a just-in-time build: a prebuilt binary would have to match every torch, CUDA and GPU
combination a user has; built on first use with ``torch.utils.cpp_extension`` it targets exactly
the running torch and GPU. The build lands in ``$VOXKIT_CACHE_DIR/cuda/<torch>-<cuda>-<sm>``
(default ``~/.cache/voxkit``), so only the first process on a machine pays for it, and the time it
took is printed once then. Before any op uses them, the kernels are checked against the PyTorch
references on small random inputs (both row layouts, fp32 and bf16, forward and backward): a
kernel that disagrees turns the whole set off, with the reason in :func:`status`, and every op
keeps its reference. The same happens without a GPU, without the sources (an install that is not a
checkout), on a failed build and with ``VOXKIT_KERNELS=off``; ``voxkit env`` prints the status.

The forward kernels run inside the registry's custom ops; the backward kernels are custom ops of
their own (namespace ``voxkit_cuda``, with fake implementations) so that ``torch.compile`` traces
a training step's backward through them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from voxkit.ops import registry
from voxkit.ops.native import cache_dir
from voxkit.ops.norm import ada_rms_norm_reference, add_rms_norm_reference, rms_norm_reference
from voxkit.ops.rope import rope_reference
from voxkit.ops.swiglu import swiglu_reference

log = logging.getLogger("voxkit.ops")

NAME = "cuda"  # the implementations' name in the registry and in `voxkit env`
EXTENSION = "voxkit_cuda"
SOURCES = ("binding.cpp", "rms_norm.cu", "rope.cu", "swiglu.cu")
HEADERS = ("common.cuh", "launchers.h")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
PACK_BYTES = 16  # one vectorised load
MAX_PACKS_PER_ROW = 8192  # the norm kernels hold a row in registers (cuda/rms_norm.cu)

_lock = threading.RLock()
_state: dict[str, Any] = {"tried": False, "module": None, "status": "not loaded yet (loads on the first CUDA call)"}


def source_dir() -> Path:
    """Where the .cu sources are: ``$VOXKIT_CUDA_SOURCES``, else ``voxkit/cuda/`` of an installed
    wheel (the package data ``voxkit.cuda``), else the checkout's ``cuda/`` (an editable install)."""
    override = os.environ.get("VOXKIT_CUDA_SOURCES")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]  # voxkit/
    installed = package / "cuda"
    return installed if (installed / SOURCES[0]).is_file() else package.parent / "cuda"


def build_dir() -> Path:
    """One build per torch, CUDA and GPU architecture (ninja rebuilds it when a source changes)."""
    major, minor = torch.cuda.get_device_capability()
    return cache_dir().parent / "cuda" / f"torch{torch.__version__}-cu{torch.version.cuda}-sm{major}{minor}"


def status() -> str:
    """One line: whether the kernels are in use, and why not."""
    return str(_state["status"])


def build(sources: Sequence[str | Path], directory: Path, arch: str, include_dirs: Sequence[str] = ()) -> Any:
    """Compile and import the extension for the GPU architecture ``arch`` ("9.0"); ninja rebuilds
    only what changed. A user's ``TORCH_CUDA_ARCH_LIST`` wins over ``arch``. Needs no GPU: the
    test suite builds it on CPU machines too."""
    from torch.utils.cpp_extension import load as load_extension

    env_arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = env_arch or arch
    try:
        return load_extension(
            name=EXTENSION,
            sources=[str(s) for s in sources],
            # no -std: torch's default is the standard its own headers need (C++20 from 2.14)
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3"],
            extra_include_paths=list(include_dirs),
            build_directory=str(directory),
            verbose=False,
        )
    finally:
        if env_arch is None:
            del os.environ["TORCH_CUDA_ARCH_LIST"]


def _build(sources: list[str], directory: Path) -> Any:
    """The build for the running GPU only."""
    major, minor = torch.cuda.get_device_capability()
    return build(sources, directory, f"{major}.{minor}")


def load() -> Any | None:
    """The built extension module, or None (then :func:`status` says why). Builds on the first call."""
    with _lock:
        if _state["tried"]:
            return _state["module"]
        _state["tried"] = True
        _state["module"] = _load()
        return _state["module"]


def _self_check(module: Any) -> str | None:
    """What :mod:`voxkit.ops.cuda_selfcheck` finds wrong with the built kernels (None: nothing)."""
    from voxkit.ops.cuda_selfcheck import self_check

    _state["module"] = module  # the wrappers fetch it while the check runs inside load()
    try:
        return self_check(KERNELS)
    finally:
        _state["module"] = None


def _load() -> Any | None:
    if not torch.cuda.is_available():
        _state["status"] = "off: no CUDA device (the PyTorch references run)"
        return None
    root = source_dir()
    missing = [name for name in (*SOURCES, *HEADERS) if not (root / name).is_file()]
    if missing:
        _state["status"] = f"off: the kernel sources are not in {root} (missing {', '.join(missing)}); install voxkit from a checkout"
        return None
    directory = build_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fresh = not any(directory.glob(f"{EXTENSION}*.so"))
        start = time.perf_counter()
        module = _build([str(root / name) for name in SOURCES], directory)
        seconds = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 (a compiler error, a missing nvcc or ninja, an import error)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _state["status"] = f"off: the build failed ({first}); the PyTorch references run"
        log.warning("voxkit CUDA kernels: build failed, using the PyTorch references: %s", error)
        return None
    gpu = torch.cuda.get_device_name()
    if fresh:
        print(f"voxkit: built the CUDA kernels for {gpu} in {seconds:.1f} s (cached in {directory})", file=sys.stderr)
    problem = _self_check(module)
    if problem is not None:
        _state["status"] = f"off: the self-check failed ({problem}); the PyTorch references run"
        log.warning("voxkit CUDA kernels disabled: %s", problem)
        return None
    _state["status"] = f"on: built for {gpu} ({'built' if fresh else 'loaded'} in {seconds:.1f} s, {directory})"
    return module


def _module() -> Any:
    module = _state["module"] or load()  # set while the self-check runs inside load()
    if module is None:
        raise RuntimeError(f"voxkit CUDA kernels are not available: {status()}")
    return module


def available() -> bool:
    if not _state["tried"] and torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        # building and checking the kernels synchronises with the GPU, which a capture forbids
        raise RuntimeError(
            "voxkit's CUDA kernels load on their first call, which cannot be inside a CUDA graph capture: "
            "run the captured function once before capturing (a warm-up call, as lm/graphs.py does)"
        )
    # The first call may come while a compiled training step's backward is being traced (the
    # registry asks which implementation applies on fake tensors): the build and the self-check
    # need real tensors, so the tracing modes are set aside while they run.
    with _outside_tracing():
        return load() is not None


def _outside_tracing() -> contextlib.AbstractContextManager[Any]:
    try:
        from torch.utils._python_dispatch import _disable_current_modes
    except ImportError:  # a torch without it: nothing to set aside
        return contextlib.nullcontext()
    return _disable_current_modes()


# ----------------------------------------------------------------------------- what the kernels take


def _last_dim_ok(t: torch.Tensor) -> bool:
    """Rows the kernels read: last dim contiguous, 16-bit or 32-bit floats, on a GPU, not empty."""
    return t.is_cuda and t.dtype in DTYPES and t.numel() > 0 and t.stride(-1) == 1


def _row_view_ok(t: torch.Tensor) -> bool:
    """Whether ``t.view(-1, t.shape[-1])`` exists: the leading dims collapse into one row stride
    (as for the halves of one [..., 2H] product). Read from sizes and strides, without trying the
    view: a fake tensor's failed view raises another error type, and an exception costs time."""
    lead = [(size, stride) for size, stride in zip(t.shape[:-1], t.stride()[:-1], strict=True) if size != 1]
    return all(outer[1] == inner[1] * inner[0] for outer, inner in zip(lead, lead[1:], strict=False))


def _vec(dtype: torch.dtype) -> int:
    return PACK_BYTES // dtype.itemsize


def _aligned(t: torch.Tensor) -> bool:
    """The kernels' 16-byte path may read ``t`` (base offset and row strides whole packs; the
    caching allocator's blocks themselves are aligned). Metadata only: fake tensors answer too."""
    vec = _vec(t.dtype)
    return t.storage_offset() % vec == 0 and all(st % vec == 0 for sz, st in zip(t.shape[:-1], t.stride()[:-1], strict=True) if sz != 1)


def _row_fits(dim: int, dtype: torch.dtype) -> bool:
    """A norm row fits the kernel's registers: up to MAX_PACKS_PER_ROW elements on any path, and
    up to that many 16-byte packs when the wrappers hand it aligned rows (:func:`_kernel_rows`)."""
    vec = _vec(dtype)
    return dim <= MAX_PACKS_PER_ROW or (dim % vec == 0 and dim // vec <= MAX_PACKS_PER_ROW)


def _same_device(*tensors: torch.Tensor) -> bool:
    return all(t.device == tensors[0].device for t in tensors[1:])


def _weight_ok(weight: torch.Tensor, x: torch.Tensor) -> bool:
    return weight.dtype == x.dtype and weight.dim() == 1 and weight.shape[0] == x.shape[-1] and weight.is_contiguous()


def rms_norm_applies(x: torch.Tensor, weight: torch.Tensor, eps: float) -> bool:
    return _last_dim_ok(x) and _weight_ok(weight, x) and _same_device(x, weight) and _row_fits(x.shape[-1], x.dtype)


def ada_rms_norm_applies(x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, eps: float) -> bool:
    # rows that view as [N, D]: a copy would give a layout other than the reference's (the fake's)
    if not (rms_norm_applies(x, weight, eps) and x.dim() == 3 and _row_view_ok(x)):
        return False
    B, _, D = x.shape
    return gain.dtype == x.dtype and tuple(gain.shape) == (B, 1, D) and gain.stride(-1) == 1 and _same_device(x, gain)


def add_rms_norm_applies(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float) -> bool:
    return (
        rms_norm_applies(x, weight, eps)
        and residual.shape == x.shape
        and residual.dtype == x.dtype
        and _last_dim_ok(residual)
        and _same_device(x, residual)
        and _row_view_ok(x)
        and _row_view_ok(residual)
    )


def rope_applies(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> bool:
    if not (_last_dim_ok(x) and x.dim() == 4 and x.shape[-1] % 2 == 0):
        return False
    B, _, T, hd = x.shape
    tables = (cos.shape[0] in (1, B), tuple(cos.shape[1:]) == (1, T, hd // 2), cos.shape == sin.shape)
    return all(tables) and cos.dtype == sin.dtype == torch.float32 and _same_device(x, cos, sin)


def swiglu_applies(gate: torch.Tensor, up: torch.Tensor) -> bool:
    return (
        _last_dim_ok(gate)
        and _last_dim_ok(up)
        and gate.shape == up.shape
        and gate.dtype == up.dtype
        and _same_device(gate, up)
        and _row_view_ok(gate)
        and _row_view_ok(up)
    )


# ----------------------------------------------------------------------------- forward


def _kernel_rows(t: torch.Tensor) -> torch.Tensor:
    """[..., D] -> [N, D] as the kernels take it: a view where one exists (stride 1 on D, one row
    stride, 16-byte aligned for rows longer than MAX_PACKS_PER_ROW elements), else a copy (a
    gradient may come expanded, with stride 0, or permuted)."""
    dim = t.shape[-1]
    if t.stride(-1) == 1 and _row_view_ok(t):
        rows = t.view(-1, dim)  # [N, D]
        if dim <= MAX_PACKS_PER_ROW or _aligned(rows):
            return rows
    return t.reshape(-1, dim).clone(memory_format=torch.contiguous_format)  # [N, D]


def _aligned_copy(t: torch.Tensor) -> torch.Tensor:
    """A weight or gain table the 16-byte path can read (copied only for long, misaligned rows)."""
    return t if t.shape[-1] <= MAX_PACKS_PER_ROW or _aligned(t) else t.clone(memory_format=torch.contiguous_format)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _module().rms_norm(_kernel_rows(x), _aligned_copy(weight), eps).view(x.shape)  # [..., D]


def ada_rms_norm(x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    B, T, D = x.shape
    gain_rows = _aligned_copy(gain.reshape(B, D))  # [B, D]
    return _module().ada_rms_norm(_kernel_rows(x), _aligned_copy(weight), gain_rows, T, eps).view(B, T, D)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    total, out = _module().add_rms_norm(_kernel_rows(x), _kernel_rows(residual), _aligned_copy(weight), eps)  # [N, D] each
    return total.view(x.shape), out.view(x.shape)


def _tables(cos: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return cos.reshape(cos.shape[0], x.shape[2], x.shape[3] // 2).contiguous()  # [Bc, T, hd/2]


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # Laid out as the reference's result (contiguous), whatever x's layout: a compiled graph
    # plans with the reference's strides.
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # [B, H, T, hd]
    return _module().rope(x, _tables(cos, x), _tables(sin, x), False, out)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return _module().swiglu(_kernel_rows(gate), _kernel_rows(up)).view(gate.shape)  # [..., H]


# ----------------------------------------------------------------------------- backward (custom ops)


@torch.library.custom_op(f"{EXTENSION}::rms_norm_backward", mutates_args=())
def rms_norm_backward_op(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor | None, rows_per_gain: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dy, x [N, D]; gain [G, D] or None -> (dx [N, D], dweight [D], dgain [G, D], empty without gain)."""
    dx, dweight, dgain = _module().rms_norm_backward(dy, x, weight, gain, rows_per_gain, eps)
    return dx, dweight, (dgain if dgain is not None else x.new_empty(0))


@rms_norm_backward_op.register_fake
def _rms_norm_backward_fake(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor | None, rows_per_gain: int, eps: float
) -> Any:
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        torch.empty_like(weight),
        (torch.empty_like(gain, memory_format=torch.contiguous_format) if gain is not None else x.new_empty(0)),
    )


@torch.library.custom_op(f"{EXTENSION}::add_rms_norm_backward", mutates_args=())
def add_rms_norm_backward_op(
    dtotal: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All [N, D] but weight [D] -> (dx, dresidual [N, D] (equal, two buffers), dweight [D])."""
    dx, dresidual, dweight = _module().add_rms_norm_backward(dtotal, dy, x, residual, weight, eps)
    return dx, dresidual, dweight


@add_rms_norm_backward_op.register_fake
def _add_rms_norm_backward_fake(
    dtotal: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> Any:
    like = torch.empty_like(x, memory_format=torch.contiguous_format)
    return like, torch.empty_like(like), torch.empty_like(weight)


@torch.library.custom_op(f"{EXTENSION}::rope_inverse", mutates_args=())
def rope_inverse_op(dy: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """dy [B, H, T, hd]; cos, sin [Bc, T, hd/2] -> dy rotated back (RoPE's input gradient)."""
    out = torch.empty(dy.shape, dtype=dy.dtype, device=dy.device)  # [B, H, T, hd]
    return _module().rope(dy, cos, sin, True, out)


@rope_inverse_op.register_fake
def _rope_inverse_fake(dy: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return torch.empty(dy.shape, dtype=dy.dtype, device=dy.device)


@torch.library.custom_op(f"{EXTENSION}::swiglu_backward", mutates_args=())
def swiglu_backward_op(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dy, gate, up [N, H] -> (dgate, dup) [N, H]."""
    dgate, dup = _module().swiglu_backward(dy, gate, up)
    return dgate, dup


@swiglu_backward_op.register_fake
def _swiglu_backward_fake(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> Any:
    like = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    return like, torch.empty_like(like)


def _grad(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def rms_norm_backward(
    needs: Sequence[bool], grads: Sequence[torch.Tensor | None], x: torch.Tensor, weight: torch.Tensor, eps: float
) -> Any:
    rows = _kernel_rows(x)
    dx, dweight, _ = rms_norm_backward_op(_kernel_rows(_grad(grads[0], x)), rows, _aligned_copy(weight), None, rows.shape[0], eps)
    return dx.view(x.shape), dweight, None


def ada_rms_norm_backward(
    needs: Sequence[bool], grads: Sequence[torch.Tensor | None], x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, eps: float
) -> Any:
    B, T, D = x.shape
    dy = _kernel_rows(_grad(grads[0], x))
    dx, dweight, dgain = rms_norm_backward_op(dy, _kernel_rows(x), _aligned_copy(weight), _aligned_copy(gain.reshape(B, D)), T, eps)
    return dx.view(B, T, D), dweight, dgain.view(B, 1, D), None


def add_rms_norm_backward(
    needs: Sequence[bool], grads: Sequence[torch.Tensor | None], x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> Any:
    dtotal, dy = (_kernel_rows(_grad(g, x)) for g in grads)
    dx, dresidual, dweight = add_rms_norm_backward_op(dtotal, dy, _kernel_rows(x), _kernel_rows(residual), _aligned_copy(weight), eps)
    return dx.view(x.shape), dresidual.view(x.shape), dweight, None


def rope_backward(
    needs: Sequence[bool], grads: Sequence[torch.Tensor | None], x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> Any:
    if needs[1] or needs[2]:
        return None  # gradients of the angle tables: the reference computes them
    dy = _grad(grads[0], x)
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    return rope_inverse_op(dy, _tables(cos, x), _tables(sin, x)), None, None


def swiglu_backward(needs: Sequence[bool], grads: Sequence[torch.Tensor | None], gate: torch.Tensor, up: torch.Tensor) -> Any:
    dy = _kernel_rows(_grad(grads[0], gate))
    dgate, dup = swiglu_backward_op(dy, _kernel_rows(gate), _kernel_rows(up))
    return dgate.view(gate.shape), dup.view(gate.shape)


# ----------------------------------------------------------------------------- registration and self-check

# op name -> (forward, applies, backward, reference)
KERNELS: dict[str, tuple[Callable[..., Any], Callable[..., bool], Callable[..., Any], Callable[..., Any]]] = {
    "rms_norm": (rms_norm, rms_norm_applies, rms_norm_backward, rms_norm_reference),
    "ada_rms_norm": (ada_rms_norm, ada_rms_norm_applies, ada_rms_norm_backward, ada_rms_norm_reference),
    "add_rms_norm": (add_rms_norm, add_rms_norm_applies, add_rms_norm_backward, add_rms_norm_reference),
    "rope": (rope, rope_applies, rope_backward, rope_reference),
    "swiglu": (swiglu, swiglu_applies, swiglu_backward, swiglu_reference),
}


def register() -> None:
    """Register every kernel as the first CUDA implementation of its op (idempotent)."""
    for op, (fn, applies, backward, _) in KERNELS.items():
        if any(i.name == NAME for i in registry.get(op).implementations.get("cuda", [])):
            continue
        registry.register_implementation(op, "cuda", NAME, fn, applies=applies, available=available, backward=backward)


register()
