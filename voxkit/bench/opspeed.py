"""Each op's time and bandwidth at one large shape: voxkit next to its peers, same inputs, same run.

Columns: ``voxkit`` (the dispatched kernel; not timed when the reference would run, so that a
reference time is never reported as voxkit's), ``F.rms_norm`` (PyTorch's fused norm, the norms
only), ``torch.compile`` (the reference compiled, fullgraph, static shapes), ``eager`` (the
reference as PyTorch runs it: what ``VOXKIT_KERNELS=off`` gives) and ``Liger`` (Liger-Kernel,
when importable: RMSNorm and SwiGLU). Forward under ``no_grad``; backward is
``torch.autograd.grad`` alone, after an untimed forward per repeat. TB/s = the op's least bytes
(:mod:`voxkit.bench.opspecs`) / median time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from voxkit.bench.correctness import dtype_name
from voxkit.bench.harness import Context, say
from voxkit.bench.opspecs import SPECS, OpSpec, as_tuple
from voxkit.bench.timing import Timer

COLUMNS = ("voxkit", "F.rms_norm", "torch.compile", "eager", "Liger")


def _columns(spec: OpSpec, args: list[Any], backend: str) -> dict[str, Callable[..., Any] | str]:
    """name -> fn(*args), or the reason the column is empty."""
    out: dict[str, Callable[..., Any] | str] = {}
    implementation = spec.op.select(args)
    out["voxkit"] = spec.voxkit if implementation is not None else "no kernel for these inputs (the reference would run)"
    for name in ("F.rms_norm", "Liger"):
        builder = spec.peers.get(name)
        if builder is None:
            continue
        try:
            out[name] = builder()
        except Exception as err:  # an optional peer: absent is a result, not an error
            out[name] = f"unavailable: {type(err).__name__}: {err}"
    # the op's own reference function: one code object per op, so the ops do not share a compile cache
    out["torch.compile"] = torch.compile(spec.op.reference, fullgraph=True, dynamic=False, backend=backend)
    out["eager"] = spec.reference
    return out


def time_column(timer: Timer, fn: Callable[..., Any], args: list[Any], spec: OpSpec, reps: int) -> dict[str, float]:
    sync = torch.cuda.synchronize if timer.cuda else (lambda: None)
    result: dict[str, float] = {}
    start = time.perf_counter()
    with torch.no_grad():
        fn(*args)
    sync()
    result["first_call_s"] = time.perf_counter() - start
    with torch.no_grad():
        result["fwd_s"] = timer.median(lambda _: fn(*args), reps=reps)
    leaves = [a.detach().requires_grad_() if i in spec.diff else a for i, a in enumerate(args)]
    inputs = [leaves[i] for i in spec.diff]
    outs = as_tuple(fn(*leaves))
    grads_out = [torch.randn_like(o) for o in outs]
    del outs

    def forward() -> tuple[torch.Tensor, ...]:
        return as_tuple(fn(*leaves))

    result["bwd_s"] = timer.median(lambda outs: torch.autograd.grad(outs, inputs, grads_out), setup=forward, reps=max(reps // 2, 1))
    return result


def run(ctx: Context) -> None:
    opts = ctx.opts
    timer = Timer(ctx.device)
    dtype = torch.bfloat16
    gen = torch.Generator(device=ctx.device).manual_seed(opts.seed + 1)
    copy = ctx.results.get("copy", {}).get("same_size_bps")
    ctx.data["dtype"] = dtype_name(dtype)
    ctx.data["compile_backend"] = opts.compile_backend
    ctx.data["rows"] = rows = {}
    say(f"  bf16, median of {opts.reps} forward / {max(opts.reps // 2, 1)} backward calls, L2 flushed before each"
        f"{'' if ctx.cuda else ' (CPU: wall clock, no flush)'}; torch.compile backend {opts.compile_backend}")
    if copy:
        say(f"  %copy = TB/s over the copy of one [{opts.rows}, {opts.dim}] bf16 tensor: {copy / 1e12:.2f} TB/s")
    order = ["rms_norm", "ada_rms_norm", "swiglu", "add_rms_norm", "rope"]  # the goals' ops first
    for spec in sorted(SPECS, key=lambda s: order.index(s.name) if s.name in order else len(order)):
        if not ctx.has(25.0 if ctx.cuda else 2.0, f"timing {spec.name}"):
            continue
        case = spec.bench_case(opts.rows, opts.dim)
        args = spec.make(case, dtype, ctx.device, gen)
        fwd_bytes, bwd_bytes = spec.fwd_bytes(args), spec.bwd_bytes(args)
        implementation = spec.op.select(args)
        row: dict[str, Any] = {"shape": case.label, "fwd_bytes": fwd_bytes, "bwd_bytes": bwd_bytes, "bytes": spec.bytes_note,
                               "path": implementation.name if implementation is not None else "reference", "columns": {}}
        rows[spec.name] = row
        say(f"\n  {spec.name} [{case.label}] bf16, least bytes fwd {fwd_bytes / 1e6:.1f} MB, bwd {bwd_bytes / 1e6:.1f} MB "
            f"({spec.bytes_note}); voxkit path: {row['path']}")
        say(f"    {'column':14s} {'fwd µs':>9s} {'fwd TB/s':>9s} {'%copy':>6s} {'bwd µs':>9s} {'bwd TB/s':>9s} {'%copy':>6s} "
            f"{'first call s':>12s}")
        for name, fn in _columns(spec, args, opts.compile_backend).items():
            if isinstance(fn, str):
                row["columns"][name] = {"error": fn}
                say(f"    {name:14s} -- {fn}")
                continue
            try:
                r = time_column(timer, fn, args, spec, opts.reps)
            except Exception as err:
                row["columns"][name] = {"error": f"{type(err).__name__}: {err}"}
                say(f"    {name:14s} -- failed: {type(err).__name__}: {str(err)[:300]}")
                continue
            r["fwd_bps"] = fwd_bytes / r["fwd_s"]
            r["bwd_bps"] = bwd_bytes / r["bwd_s"]
            row["columns"][name] = r
            pf = f"{100 * r['fwd_bps'] / copy:5.1f}%" if copy else "     -"
            pb = f"{100 * r['bwd_bps'] / copy:5.1f}%" if copy else "     -"
            say(f"    {name:14s} {r['fwd_s'] * 1e6:9.1f} {r['fwd_bps'] / 1e12:9.3f} {pf:>6s} {r['bwd_s'] * 1e6:9.1f} "
                f"{r['bwd_bps'] / 1e12:9.3f} {pb:>6s} {r['first_call_s']:12.2f}")
        del args
