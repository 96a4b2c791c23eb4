"""The op registry: each reference against a naive formula, dispatch, kill switch, compile, autograd."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from cpu_kernel_helpers import CAN_BUILD
from voxkit import ops
from voxkit.lm.rope import apply_rotary
from voxkit.ops import registry
from voxkit.ops.norm import rms_norm_reference

# ----------------------------------------------------------------------------- naive formulas


def naive_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    normed = x32 / torch.sqrt((x32 * x32).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def naive_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd], angles [T, hd/2]: a 2x2 rotation matrix per pair, one pair at a time."""
    out = torch.empty_like(x)
    for t in range(x.shape[2]):
        for i in range(x.shape[3] // 2):
            c, s = math.cos(angles[t, i].item()), math.sin(angles[t, i].item())
            a, b = x[:, :, t, 2 * i], x[:, :, t, 2 * i + 1]
            out[:, :, t, 2 * i], out[:, :, t, 2 * i + 1] = c * a - s * b, s * a + c * b
    return out


def visible(T: int, S: int, causal: bool, window: int | None) -> torch.Tensor:
    """[T, S] bool from the rule written out: query i sits at position S - T + i."""
    allowed = torch.ones(T, S, dtype=torch.bool)
    for i in range(T):
        p = S - T + i
        for j in range(S):
            ok = j <= p if causal else True
            if window is not None:
                ok = ok and (p - j < window if causal else abs(p - j) < window)
            allowed[i, j] = ok
    return allowed


def naive_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None, bias: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """Per batch and head: softmax(q k^T * scale + bias, masked) v; head h reads key head h // (H / Hkv)."""
    B, H, T, _ = q.shape
    group = H // k.shape[1]
    out = torch.empty_like(q)
    for b in range(B):
        for h in range(H):
            kh = h // group
            scores = q[b, h] @ k[b, kh].T * scale  # [T, S]
            if bias is not None:
                scores = scores + bias.expand(B, H, T, -1)[b, h]
            if allowed is not None:
                scores = scores.masked_fill(~allowed.expand(B, H, T, -1)[b, h], float("-inf"))
            out[b, h] = torch.softmax(scores, dim=-1) @ v[b, kh]
    return out


def alibi(H: int, T: int, S: int) -> torch.Tensor:
    """[1, H, T, S] ALiBi bias: -slope_h * |distance|, slopes 2^(-8 (h+1) / H)."""
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)], dtype=torch.float64)
    distance = (torch.arange(T)[:, None] + S - T - torch.arange(S)[None, :]).abs()  # [T, S]
    return (-slopes[:, None, None] * distance)[None]


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_references(dtype: torch.dtype) -> None:
    x, residual = torch.randn(2, 5, 16, dtype=dtype), torch.randn(2, 5, 16, dtype=dtype)
    weight, gain = torch.randn(16, dtype=dtype), torch.randn(2, 1, 16, dtype=dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-2}
    torch.testing.assert_close(ops.rms_norm(x, weight, 1e-5), naive_rms_norm(x, weight, 1e-5), **tol)
    torch.testing.assert_close(ops.ada_rms_norm(x, weight, gain, 1e-5), naive_rms_norm(x, weight, 1e-5) * gain, **tol)
    total, normed = ops.add_rms_norm(x, residual, weight, 1e-6)
    assert torch.equal(total, x + residual)
    torch.testing.assert_close(normed, naive_rms_norm(x + residual, weight, 1e-6), **tol)


def test_rope_reference_rotates_pairs_and_matches_the_complex_form() -> None:
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    angles = torch.randn(4, 4, dtype=torch.float64)  # [T, hd/2]
    cos, sin = angles.cos()[None, None], angles.sin()[None, None]  # [1, 1, T, hd/2]
    out = ops.rope(x, cos, sin)
    torch.testing.assert_close(out, naive_rope(x, angles))
    x32 = x.float()
    rotation = torch.polar(torch.full((4, 4), 0.9), angles.float())[None, None]  # a scaled rotation, complex64
    torch.testing.assert_close(ops.rope(x32, rotation.real, rotation.imag), apply_rotary(x32, rotation), rtol=1e-6, atol=1e-6)


def test_swiglu_reference() -> None:
    gate, up = torch.randn(3, 10), torch.randn(3, 10)
    torch.testing.assert_close(ops.swiglu(gate, up), gate * torch.sigmoid(gate) * up)


def test_stored_linear_reference() -> None:
    x, w, b = torch.randn(12, 16), torch.randn(5, 16).half(), torch.randn(5)
    torch.testing.assert_close(ops.stored_linear(x, w, b), x @ w.float().T + b, rtol=1e-5, atol=1e-5)


ATTENTION_CASES = {
    # name: (H, Hkv, T, S, mask kind, is_causal, window)
    "causal": (4, 4, 6, 6, None, True, None),
    "bidirectional": (4, 4, 6, 6, None, False, None),
    "bool mask": (4, 4, 6, 6, "bool", False, None),
    "bool mask and causal": (4, 4, 6, 6, "bool", True, None),
    "alibi": (4, 4, 6, 6, "alibi", False, None),
    "alibi, causal, window": (4, 4, 7, 7, "alibi", True, 3),
    "sliding window causal": (4, 4, 7, 7, None, True, 3),
    "sliding window bidirectional": (4, 4, 7, 7, None, False, 2),
    "gqa causal": (4, 2, 6, 6, None, True, None),
    "gqa, decode against a cache, window": (6, 2, 2, 9, None, True, 4),
    "gqa bool mask decode": (4, 1, 3, 8, "bool", False, None),
}


@pytest.mark.parametrize("case", list(ATTENTION_CASES))
def test_attention_reference(case: str) -> None:
    H, Hkv, T, S, kind, causal, window = ATTENTION_CASES[case]
    q = torch.randn(2, H, T, 8, dtype=torch.float64)
    k, v = torch.randn(2, Hkv, S, 8, dtype=torch.float64), torch.randn(2, Hkv, S, 8, dtype=torch.float64)
    allowed = visible(T, S, causal, window) if causal or window is not None else None
    mask = bias = None
    if kind == "bool":
        mask = torch.rand(2, 1, T, S) < 0.7
        mask[..., torch.arange(T), torch.arange(T) + S - T] = True  # each query sees its own position (any band keeps it)
        allowed = mask if allowed is None else mask & allowed
    elif kind == "alibi":
        mask = bias = alibi(H, T, S)
    expected = naive_attention(q, k, v, allowed, bias, 8**-0.5)
    torch.testing.assert_close(ops.attention(q, k, v, mask=mask, is_causal=causal, window=window), expected)
    torch.testing.assert_close(
        ops.attention(q, k, v, mask=mask, is_causal=causal, window=window, scale=0.3), naive_attention(q, k, v, allowed, bias, 0.3)
    )


# ----------------------------------------------------------------------------- dispatch


class Counted:
    """An implementation equal to the reference (computed another way where it matters), counting calls."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        out = self.fn(*args)
        return tuple(o.clone() for o in out) if isinstance(out, tuple) else out.clone()


@contextmanager
def registered(op: str, name: str, fn: Callable[..., Any], **kwargs: Any) -> Iterator[Counted]:
    counted = Counted(fn)
    ops.register_implementation(op, "cpu", name, counted, **kwargs)
    try:
        yield counted
    finally:
        ops.unregister_implementation(op, "cpu", name)


def test_registered_implementation_is_used_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    x, w = torch.randn(2, 3, 8), torch.randn(8)
    with registered("rms_norm", "test-dispatch", rms_norm_reference) as impl, caplog.at_level(logging.INFO, "voxkit.ops"):
        assert dict((n, a) for n, a, _ in ops.describe("cpu"))["rms_norm"] == "test-dispatch"
        for _ in range(3):
            torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), naive_rms_norm(x, w, 1e-5))
        assert impl.calls == 3
        lines = [r.getMessage() for r in caplog.records if "test-dispatch" in r.getMessage()]
        assert lines == ["voxkit op rms_norm -> test-dispatch"]
    assert dict((n, a) for n, a, _ in ops.describe("cpu"))["rms_norm"] == "torch"  # unregistered again


def test_kill_switch_forces_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = torch.randn(2, 8), torch.randn(8)
    with registered("rms_norm", "test-kill", rms_norm_reference) as impl:
        monkeypatch.setenv("VOXKIT_KERNELS", "off")
        torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), naive_rms_norm(x, w, 1e-5))
        assert impl.calls == 0
        assert all(active == "torch" for _, active, _ in ops.describe("cpu"))
        monkeypatch.setenv("VOXKIT_KERNELS", "auto")
        ops.rms_norm(x, w, 1e-5)
        assert impl.calls == 1


def test_kill_switch_words_and_a_misspelling(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """"no" is off too; an unknown value ("of") keeps the kernels on and says so once, instead of
    passing for a kill switch silently."""
    from voxkit.ops.dispatch import kernels_enabled

    for word, enabled in (("no", False), ("OFF", False), ("reference", False), ("yes", True), ("auto", True)):
        monkeypatch.setenv("VOXKIT_KERNELS", word)
        assert kernels_enabled() is enabled
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("VOXKIT_KERNELS", "of")
    assert kernels_enabled() and kernels_enabled()
    assert capsys.readouterr().err.count("VOXKIT_KERNELS=of is not a known value") == 1


def test_an_implementation_that_declines_or_is_missing_leaves_the_reference() -> None:
    x, w = torch.randn(2, 8), torch.randn(8)
    with (
        registered("rms_norm", "test-declines", rms_norm_reference, applies=lambda x, w, eps: x.shape[0] > 2) as declines,
        registered("rms_norm", "test-missing", rms_norm_reference, available=lambda: False) as missing,
    ):
        ops.rms_norm(x, w, 1e-5)
        assert (declines.calls, missing.calls) == (0, 0)
        ops.rms_norm(torch.randn(3, 8), w, 1e-5)
        assert (declines.calls, missing.calls) == (1, 0)
        row = dict((n, (a, avail)) for n, a, avail in ops.describe("cpu"))["rms_norm"]
        assert row == ("test-declines", ["torch", "test-declines (cpu)"])


def capture_graphs() -> tuple[list[torch.fx.GraphModule], Callable[..., Any]]:
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        graphs.append(gm)
        return gm.forward

    return graphs, backend


def test_custom_op_compiles_without_graph_break() -> None:
    torch._dynamo.reset()
    x, w, gain = torch.randn(2, 3, 8), torch.randn(8), torch.randn(2, 1, 8)

    def step(x: torch.Tensor, w: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return ops.swiglu(ops.ada_rms_norm(x, w, gain, 1e-5), x) * 2

    graphs, backend = capture_graphs()
    with registered("ada_rms_norm", "test-compile", registry.get("ada_rms_norm").reference) as impl:
        out = torch.compile(step, fullgraph=True, backend=backend)(x, w, gain)
        assert impl.calls == 1  # the body ran at run time, inside the compiled graph
    (graph,) = graphs
    text = str(graph.graph)
    assert "voxkit.ada_rms_norm" in text  # one opaque node...
    assert "voxkit.swiglu" not in text  # ...while an op with no implementation traces its reference
    torch.testing.assert_close(out, step(x, w, gain))


def test_stored_linear_compiles_to_the_registered_op() -> None:
    torch._dynamo.reset()
    x, w, b = torch.randn(1, 32), torch.randn(8, 32).half(), torch.randn(8)
    graphs, backend = capture_graphs()
    with torch.no_grad():
        out = torch.compile(lambda x: ops.stored_linear(x, w, b) + 1, fullgraph=True, backend=backend)(x)
    torch.testing.assert_close(out, F.linear(x, w.float(), b) + 1, rtol=1e-5, atol=1e-5)
    assert ("voxkit.stored_linear" in str(graphs[0].graph)) == CAN_BUILD  # the C kernel on x86 with cc


def _with_grads(fn: Callable[..., Any], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*leaves)
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in (out if isinstance(out, tuple) else (out,)))
    floating = [t for t in leaves if t.requires_grad]
    return list(torch.autograd.grad(loss, floating))


GRAD_CASES: dict[str, tuple[Callable[..., Any], Callable[[], list[torch.Tensor]]]] = {
    "rms_norm": (lambda x, w: ops.rms_norm(x, w, 1e-5), lambda: [torch.randn(2, 3, 6), torch.randn(6)]),
    "ada_rms_norm": (lambda x, w, g: ops.ada_rms_norm(x, w, g, 1e-5), lambda: [torch.randn(2, 3, 6), torch.randn(6), torch.randn(2, 1, 6)]),
    "add_rms_norm": (lambda x, r, w: ops.add_rms_norm(x, r, w, 1e-5), lambda: [torch.randn(2, 6), torch.randn(2, 6), torch.randn(6)]),
    "rope": (ops.rope, lambda: [torch.randn(1, 2, 3, 4), torch.randn(1, 1, 3, 2), torch.randn(1, 1, 3, 2)]),
    "swiglu": (ops.swiglu, lambda: [torch.randn(2, 5), torch.randn(2, 5)]),
    "attention": (
        lambda q, k, v, bias: ops.attention(q, k, v, mask=bias, is_causal=True, window=2),
        lambda: [torch.randn(1, 2, 3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 2, 3, 3)],
    ),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradients_through_the_custom_op_equal_the_reference(name: str) -> None:
    fn, make = GRAD_CASES[name]
    inputs = [t.double() for t in make()]
    expected = _with_grads(fn, inputs)  # nothing registered: the reference, traced by autograd directly
    with registered(name, f"test-grad-{name}", registry.get(name).reference) as impl:
        got = _with_grads(fn, inputs)
        assert impl.calls == 1  # the implementation's forward, recorded through the custom op
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        assert torch.autograd.gradcheck(fn, leaves)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_compiled_training_step_through_the_custom_op() -> None:
    torch._dynamo.reset()
    x, w = torch.randn(2, 3, 8, requires_grad=True), torch.randn(8, requires_grad=True)
    expected = torch.autograd.grad(naive_rms_norm(x, w, 1e-5).pow(2).sum(), (x, w))
    with registered("rms_norm", "test-compile-grad", rms_norm_reference):
        step = torch.compile(lambda x, w: ops.rms_norm(x, w, 1e-5).pow(2).sum(), fullgraph=True, backend="aot_eager")
        got = torch.autograd.grad(step(x, w), (x, w))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_describe_lists_every_op() -> None:
    rows = ops.describe("cpu")
    assert {n for n, _, _ in rows} == {"rms_norm", "ada_rms_norm", "add_rms_norm", "rope", "swiglu", "attention", "stored_linear"}
    assert all(avail[0] == "torch" and active in [a.split(" ")[0] for a in avail] for _, active, avail in rows)
    linear = dict((n, a) for n, a, _ in rows)["stored_linear"]
    assert linear == ("c-kernel" if CAN_BUILD else "torch")
