"""The op registry: one PyTorch reference per op, optional faster implementations per device type.

Why a registry: every model calls the same few numerical ops (norms, RoPE, SwiGLU, attention,
16-bit-weight products). A faster implementation (a C kernel on the CPU, the CUDA kernels of cuda/)
is registered here once, next to its exact reference, and every model picks it up; the kill
switch ``VOXKIT_KERNELS=off`` and the "which path ran" log live in one place.

Each :class:`Op` is also a ``torch.library`` custom op (namespace ``voxkit``) with a fake
implementation (its reference run on fake tensors: the shapes and dtypes come out right without a
second shape function to keep in sync) and autograd (an implementation's closed-form backward
where it has one, else the reference's through ``torch.func.vjp``), so that ``torch.compile`` sees
one opaque op and training runs a kernel's forward and backward. Dispatch, per call:

- kernels off, or nothing registered for the first tensor's device type: the reference is called
  directly (plain eager torch: no custom-op overhead; autograd and ``torch.compile`` trace straight
  through it);
- under ``torch.compile``: the custom op, whose body chooses the implementation at run time;
  but where autograd must record the call and no implementation for the device type has a
  backward of its own, the reference is traced instead (the custom op's backward would rerun
  the reference's forward);
- otherwise the first registered implementation that is available on this machine and applies to
  these arguments (shapes, dtypes) runs, through the custom op when autograd must record it, else
  called directly: a custom-op call costs several microseconds of dispatch, which a streaming step
  of a small model, made of hundreds of small calls, would feel (docs/benchmarks.md);
- where no implementation applies, the reference.

The path each op takes is logged once per process (:func:`voxkit.ops.dispatch.announce`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from voxkit.ops.dispatch import announce, kernels_enabled

REFERENCE = "torch"  # the name under which the reference path is logged and listed
NAMESPACE = "voxkit"


@dataclasses.dataclass
class Implementation:
    """A faster implementation of an op for one device type.

    ``fn`` takes the reference's arguments and returns the same outputs (to rounding), as new
    tensors (never an input or a view of one: a custom op may not alias its inputs). ``applies``
    says per call whether it handles these arguments (dtypes, shapes, ...); ``available`` says once
    whether it works on this machine (it may build or load code; its answer is cached).

    ``backward(needs_input_grad, grads, *args)``, optional, computes the op's gradients in closed
    form (a fused kernel instead of the reference's autograd graph): one gradient or None per
    argument, or None as a whole to decline (e.g. a gradient it does not compute is asked for),
    in which case the reference's backward runs. It must be traceable by ``torch.compile`` (its
    kernels are custom ops with fake implementations) and may be called under the same
    ``applies`` as ``fn``.
    """

    name: str
    fn: Callable[..., Any]
    applies: Callable[..., bool] | None = None
    available: Callable[[], bool] | None = None
    backward: Callable[..., tuple[torch.Tensor | None, ...] | None] | None = None
    _ok: bool | None = dataclasses.field(default=None, repr=False)

    def is_available(self) -> bool:
        if self._ok is None:
            self._ok = bool(self.available()) if self.available is not None else True
        return self._ok

    def known_available(self) -> bool | None:
        """The cached answer of :meth:`is_available`, None before the first check (checks nothing)."""
        return self._ok

    def usable(self, args: Sequence[Any]) -> bool:
        return self.is_available() and (self.applies is None or bool(self.applies(*args)))


def _needs_autograd(args: Sequence[Any]) -> bool:
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)


class Op:
    """One registered op: its reference, its implementations per device type and its custom op.

    ``reference`` takes positional arguments only (tensors, optional tensors, numbers, bools) and its
    type hints define the custom op's schema; the first argument is a tensor whose device chooses
    the implementation. ``differentiable``: register autograd (the reference's backward).
    """

    def __init__(self, name: str, reference: Callable[..., Any], *, differentiable: bool = True) -> None:
        self.name = name
        self.reference = reference
        self.implementations: dict[str, list[Implementation]] = {}
        schema = torch.library.infer_schema(reference, mutates_args=())
        self.custom = torch.library.custom_op(f"{NAMESPACE}::{name}", self._custom_body, mutates_args=(), schema=schema)
        self.custom.register_fake(reference)
        if differentiable:
            self.custom.register_autograd(self._backward, setup_context=self._setup_context)

    # ------------------------------------------------------------------------- registration

    def register(self, device_type: str, implementation: Implementation, *, first: bool = True) -> Implementation:
        """Add ``implementation`` for ``device_type`` (tried before the others unless ``first=False``)."""
        chain = self.implementations.setdefault(device_type, [])
        if any(i.name == implementation.name for i in chain):
            raise ValueError(f"op {self.name} already has an implementation {implementation.name!r} for {device_type}")
        chain.insert(0 if first else len(chain), implementation)
        return implementation

    def unregister(self, device_type: str, name: str) -> None:
        chain = self.implementations.get(device_type, [])
        self.implementations[device_type] = [i for i in chain if i.name != name]
        if not self.implementations[device_type]:
            del self.implementations[device_type]

    # ------------------------------------------------------------------------- dispatch

    def select(self, args: Sequence[Any]) -> Implementation | None:
        """The implementation that would run for ``args`` (None: the reference). Eager only: it may
        build a kernel on first use."""
        chain = self.implementations.get(args[0].device.type)
        if not chain or not kernels_enabled():
            return None
        return next((i for i in chain if i.usable(args)), None)

    def __call__(self, *args: Any) -> Any:
        impls = self.implementations  # usually empty on a CPU: one test, no device lookup
        if not impls or args[0].device.type not in impls or not kernels_enabled():
            announce(self.name, REFERENCE)
            return self.reference(*args)
        if torch.compiler.is_compiling():
            if _needs_autograd(args) and not self.has_backward(args[0].device.type):
                # No implementation here has a backward of its own, so the custom op's backward
                # would rerun the reference's forward: trace the reference instead (SDPA, say,
                # then keeps its fused backward).
                return self.reference(*args)
            return self.custom(*args)  # one opaque node; the body picks the implementation at run time
        return self.run(self.select(args), args)

    def has_backward(self, device_type: str) -> bool:
        """Whether an implementation for ``device_type`` brings a closed-form backward."""
        return any(i.backward is not None for i in self.implementations.get(device_type, ()))

    def run(self, implementation: Implementation | None, args: Sequence[Any]) -> Any:
        """Run the chosen ``implementation`` (from :meth:`select`) or, for None, the reference."""
        if implementation is None:
            announce(self.name, REFERENCE)
            return self.reference(*args)
        announce(self.name, implementation.name)
        if _needs_autograd(args):
            return self.custom(*args)
        return implementation.fn(*args)

    def _custom_body(self, *args: Any) -> Any:
        implementation = self.select(args)
        announce(self.name, REFERENCE if implementation is None else implementation.name)
        return (self.reference if implementation is None else implementation.fn)(*args)

    # ------------------------------------------------------------------------- autograd

    @staticmethod
    def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        tensors = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor)]
        ctx.tensor_slots = tensors
        ctx.constants = [None if isinstance(a, torch.Tensor) else a for a in inputs]
        ctx.save_for_backward(*(inputs[i] for i in tensors))

    def _backward(self, ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """The gradients at the saved inputs: the closed-form backward of the implementation that
        applies to them where it has one, else the reference's (an implementation's forward and
        the reference compute the same function, so either backward fits either forward)."""
        args = list(ctx.constants)
        for slot, tensor in zip(ctx.tensor_slots, ctx.saved_tensors, strict=True):
            args[slot] = tensor
        implementation = self.select(args)
        if implementation is not None and implementation.backward is not None:
            result = implementation.backward(tuple(ctx.needs_input_grad), grads, *args)
            if result is not None:
                announce(f"{self.name} backward", implementation.name)
                return tuple(g if need else None for g, need in zip(result, ctx.needs_input_grad, strict=True))
        announce(f"{self.name} backward", REFERENCE)
        return self._reference_backward(ctx, args, grads)

    def _reference_backward(self, ctx: Any, args: list[Any], grads: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor | None, ...]:
        """Gradients of the reference at ``args`` through ``torch.func.vjp``."""
        wrt = [i for i in ctx.tensor_slots if ctx.needs_input_grad[i] and (args[i].is_floating_point() or args[i].is_complex())]

        def reference_of(*xs: torch.Tensor) -> Any:
            full = list(args)
            for slot, x in zip(wrt, xs, strict=True):
                full[slot] = x
            return self.reference(*full)

        outputs, vjp = torch.func.vjp(reference_of, *(args[i] for i in wrt))
        if isinstance(outputs, tuple):
            cotangent: Any = tuple(torch.zeros_like(o) if g is None else g for g, o in zip(grads, outputs, strict=True))
        else:
            cotangent = torch.zeros_like(outputs) if grads[0] is None else grads[0]
        result: list[torch.Tensor | None] = [None] * len(args)
        for slot, grad in zip(wrt, vjp(cotangent), strict=True):
            result[slot] = grad
        return tuple(result)


_OPS: dict[str, Op] = {}


def define(name: str, reference: Callable[..., Any], *, differentiable: bool = True) -> Op:
    """Create and register the op ``voxkit::name`` (once per process)."""
    if name in _OPS:
        raise ValueError(f"op {name} is already defined")
    op = _OPS[name] = Op(name, reference, differentiable=differentiable)
    return op


def get(name: str) -> Op:
    try:
        return _OPS[name]
    except KeyError:
        raise KeyError(f"no voxkit op {name!r}; known: {', '.join(sorted(_OPS))}") from None


def ops() -> list[Op]:
    """Every defined op, in definition order."""
    return list(_OPS.values())


def register_implementation(
    op: str,
    device_type: str,
    name: str,
    fn: Callable[..., Any],
    *,
    applies: Callable[..., bool] | None = None,
    available: Callable[[], bool] | None = None,
    backward: Callable[..., tuple[torch.Tensor | None, ...] | None] | None = None,
    first: bool = True,
) -> Implementation:
    """Register ``fn`` as implementation ``name`` of ``op`` on ``device_type`` ("cpu", "cuda", ...),
    with its closed-form ``backward`` if it has one (see :class:`Implementation`)."""
    return get(op).register(device_type, Implementation(name, fn, applies, available, backward), first=first)


def unregister_implementation(op: str, device_type: str, name: str) -> None:
    get(op).unregister(device_type, name)


def default_device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def describe(device_type: str | None = None) -> list[tuple[str, str, list[str]]]:
    """(op name, active implementation on ``device_type``, available implementations) per op.

    "Active" is what runs where the implementation applies (an implementation may decline some
    calls, e.g. the 16-bit product beyond a few rows). Available implementations are listed as
    ``name (device type)``, the reference as ``torch``. Checking availability may build or load a
    kernel (cached afterwards).
    """
    device_type = device_type or default_device_type()
    rows = []
    for op in ops():
        found = [(dt, i) for dt, chain in op.implementations.items() for i in chain if i.is_available()]
        mine = [i for dt, i in found if dt == device_type]
        active = mine[0].name if mine and kernels_enabled() else REFERENCE
        rows.append((op.name, active, [REFERENCE, *(f"{i.name} ({dt})" for dt, i in found)]))
    return rows
