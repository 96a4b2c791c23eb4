"""Every op, at odd and ordinary shapes in three dtypes, against its reference run in float64.

Why float64: the reference in bfloat16 rounds too, so comparing a kernel with it would accept any
error the two share; float64 on the same (rounded) inputs is the exact answer both approximate.

Poisoning: before each call that allocates outputs (forward, then gradients), the CUDA caching
allocator's free memory is filled with 0xFF bytes (NaN in every float dtype): the cache is emptied,
then blocks of the outputs' sizes (and quarters of them, down to 512 bytes) are allocated, filled
and freed, so that the outputs land on NaN and an element a kernel forgets to write stays NaN. On
a CPU nothing is poisoned (malloc gives no such handle); the comparison still runs.

Pass: finite, same shape and dtype, and ``|y - ref| <= rtol |ref| + atol max|ref|`` elementwise,
with (rtol, atol) per dtype in :data:`TOLERANCES`. atol is relative to the tensor's largest value,
so that gradients, whose elements may cancel to near zero, are judged on their scale; gradients
that sum over rows (norm weights, Ada gains) get a larger one: the reference itself rounds such a
sum once in the low dtype, an error of about one unit roundoff of the largest element (measured
over many seeds: up to 4.5e-3 in bf16, 6.5e-4 in fp16), which a kernel may share.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from voxkit.bench.harness import Context, say
from voxkit.bench.opspecs import SPECS, Case, OpSpec, as_tuple

DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# dtype -> (rtol, atol x max|ref|, atol x max|ref| for gradients summed over rows)
TOLERANCES: dict[torch.dtype, tuple[float, float, float]] = {
    torch.bfloat16: (1.6e-2, 8e-3, 1.6e-2),  # rtol: 2 bf16 ulps near 1 (2^-7 each); atol: 2 unit roundoffs
    torch.float16: (2e-3, 1e-3, 2e-3),
    torch.float32: (2e-5, 2e-6, 2e-5),
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def poison(device: torch.device, sizes: list[int], copies: int = 8) -> None:
    """Fill the free memory the next allocations of these byte sizes will get with NaN bytes."""
    if device.type != "cuda":
        return
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    held = []
    for size in sorted(set(sizes), reverse=True):
        s = size
        while s >= 512:
            held.extend(torch.empty(s, dtype=torch.uint8, device=device).fill_(255) for _ in range(copies))
            s //= 4
    held.append(torch.empty(64 << 20, dtype=torch.uint8, device=device).fill_(255))
    torch.cuda.synchronize(device)
    del held


def error_ratio(out: Any, ref: torch.Tensor, dtype: torch.dtype, reduced: bool = False) -> tuple[float, str]:
    """(worst |error| / allowed error, what went wrong or ""); > 1 fails."""
    if not isinstance(out, torch.Tensor):
        return math.inf, "no tensor"
    if out.shape != ref.shape:
        return math.inf, f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    if out.dtype != dtype:
        return math.inf, f"dtype {dtype_name(out.dtype)} != {dtype_name(dtype)}"
    wide = out.detach().double()
    if not bool(torch.isfinite(wide).all()):
        bad = int((~torch.isfinite(wide)).sum())
        return math.inf, f"{bad} of {wide.numel()} elements non-finite (unwritten or overflow)"
    if ref.numel() == 0:
        return 0.0, ""
    rtol, atol, atol_reduced = TOLERANCES[dtype]
    atol = atol_reduced if reduced else atol
    allowed = rtol * ref.abs() + atol * float(ref.abs().max()) + 1e-30
    return float(((wide - ref).abs() / allowed).max()), ""


def _wide(a: Any, grad: bool = False) -> Any:
    if isinstance(a, torch.Tensor) and a.is_floating_point():
        w = a.detach().double()
        return w.requires_grad_() if grad else w
    return a


def check_case(spec: OpSpec, case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> dict[str, Any]:
    """One op at one shape and dtype, forward and backward; returns the record (``ok`` and ratios)."""
    record: dict[str, Any] = {"op": spec.name, "case": case.label, "dtype": dtype_name(dtype)}
    args = spec.make(case, dtype, device, gen)
    implementation = spec.op.select(args)
    record["path"] = implementation.name if implementation is not None else "reference"
    problems = []
    # forward
    ref = as_tuple(spec.reference(*[_wide(a) for a in args]))
    poison(device, [r.numel() * args[0].element_size() for r in ref])
    with torch.no_grad():
        out = as_tuple(spec.voxkit(*args))
    ratios = []
    for i, (o, r) in enumerate(zip(out, ref, strict=True)):
        ratio, why = error_ratio(o, r, dtype)
        ratios.append(ratio)
        if why:
            problems.append(f"forward output {i}: {why}")
    record["fwd"] = max(ratios) if len(out) == len(ref) else math.inf
    # backward: through autograd, as training calls the op
    leaves = [a.detach().requires_grad_() if i in spec.diff else a for i, a in enumerate(args)]
    outs = as_tuple(spec.voxkit(*leaves))
    grads_out = [torch.randn(o.shape, generator=gen, device=device, dtype=torch.float32).to(o.dtype) for o in outs]
    inputs = [leaves[i] for i in spec.diff]
    poison(device, [t.numel() * t.element_size() for t in inputs])
    grads = torch.autograd.grad(outs, inputs, grads_out, allow_unused=True)
    wide_leaves = [_wide(a, grad=i in spec.diff) for i, a in enumerate(args)]
    wide_outs = as_tuple(spec.reference(*wide_leaves))
    ref_grads = torch.autograd.grad(wide_outs, [wide_leaves[i] for i in spec.diff], [g.double() for g in grads_out])
    ratios = []
    for slot, g, r in zip(spec.diff, grads, ref_grads, strict=True):
        ratio, why = error_ratio(g, r, dtype, reduced=slot in spec.reduced)
        ratios.append(ratio)
        if why:
            problems.append(f"gradient of argument {slot}: {why}")
    record["bwd"] = max(ratios)
    record["ok"] = record["fwd"] <= 1.0 and record["bwd"] <= 1.0
    if problems:
        record["problems"] = problems
    return record


def run(ctx: Context) -> None:
    seed = ctx.opts.seed
    gen = torch.Generator(device=ctx.device).manual_seed(seed)
    say(f"  fresh random inputs (seed {seed}); pass: finite and |y - ref64| <= rtol|ref64| + atol max|ref64|, "
        "forward and every input gradient")
    for dtype, (rtol, atol, atol_reduced) in TOLERANCES.items():
        say(f"    {dtype_name(dtype):9s} rtol {rtol:g}, atol {atol:g} x max|ref| ({atol_reduced:g} for gradients summed over rows)")
    say("  outputs poisoned (NaN) before every run" if ctx.cuda else "  (CPU: no allocator poisoning; comparison only)")
    cases: list[dict[str, Any]] = ctx.data.setdefault("cases", [])
    ctx.data["tolerances"] = {dtype_name(d): {"rtol": t[0], "atol_of_max": t[1], "atol_of_max_row_sums": t[2]}
                              for d, t in TOLERANCES.items()}
    ctx.data["seed"] = seed
    for spec in SPECS:
        if not ctx.has(2.0, f"correctness of {spec.name}"):
            continue
        for dtype in DTYPES:
            mine = []
            for case in spec.cases:
                try:
                    record = check_case(spec, case, dtype, ctx.device, gen)
                except Exception as err:  # a kernel that raises fails its case; the others still run
                    record = {"op": spec.name, "case": case.label, "dtype": dtype_name(dtype), "path": "?",
                              "fwd": math.inf, "bwd": math.inf, "ok": False, "problems": [f"{type(err).__name__}: {err}"]}
                mine.append(record)
                cases.append(record)
            paths = sorted({r["path"] for r in mine})
            worst_f = max(r["fwd"] for r in mine)
            worst_b = max(r["bwd"] for r in mine)
            failed = [r for r in mine if not r["ok"]]
            say(f"  {spec.name:13s} {dtype_name(dtype):9s} {len(mine)} shapes  path {'/'.join(paths):10s} "
                f"worst error / tolerance: fwd {worst_f:.3g}, bwd {worst_b:.3g}  {'ok' if not failed else 'FAIL'}")
            for r in failed:
                say(f"    FAIL {r['op']} {r['case']} {r['dtype']} [{r['path']}]: fwd {r['fwd']:.3g}, bwd {r['bwd']:.3g} "
                    f"{'; '.join(r.get('problems', []))}")
    n_ok = sum(r["ok"] for r in cases)
    kernel_cases = sum(r["path"] not in ("reference", "?") for r in cases)
    ctx.data.update(checked=len(cases), passed_cases=n_ok, kernel_cases=kernel_cases,
                    passed=bool(cases) and n_ok == len(cases) and not ctx.data.get("skipped"))
    say(f"  correctness: {n_ok}/{len(cases)} cases within tolerance; a kernel (not the reference) ran in {kernel_cases}")
