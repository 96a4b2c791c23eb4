"""How the fused CUDA kernels are chosen, and how every op falls back to its reference.

On a machine without a GPU this covers: the registry's closed-form backward path (with a CPU
implementation registered for the test, eagerly and under ``torch.compile``), the fallbacks (no
GPU, the kill switch, missing sources, a failed build), and the kernels' wrappers traced on fake
CUDA tensors (what ``torch.compile`` does with them: shapes, dtypes, which calls they accept).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from voxkit.ops import cuda_kernels, cuda_selfcheck, gradients, registry
from voxkit.ops.norm import rms_norm, rms_norm_reference

EPS = 1e-5


# ----------------------------------------------------------------------------- registry backward


def _closed_form_backward(needs, grads, x, weight, eps):  # type: ignore[no-untyped-def]
    """RMSNorm's backward in closed form (the formula of cuda/rms_norm.cu), in torch ops."""
    calls.append(tuple(needs))
    dx, dweight, _ = gradients.rms_norm_grads(grads[0], x, weight, None, eps)
    return dx.to(x.dtype), dweight.to(weight.dtype), None


def _declining_backward(needs, grads, x, weight, eps):  # type: ignore[no-untyped-def]
    calls.append(("declined",))
    return None


calls: list[tuple] = []


@pytest.fixture
def cpu_rms_norm() -> Iterator[registry.Implementation]:
    """A CPU implementation of rms_norm with a closed-form backward, removed afterwards."""
    calls.clear()
    impl = registry.register_implementation("rms_norm", "cpu", "test-closed-form", rms_norm_reference, backward=_closed_form_backward)
    try:
        yield impl
    finally:
        registry.unregister_implementation("rms_norm", "cpu", "test-closed-form")


def _reference_grads(x: torch.Tensor, w: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr, wr = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    rms_norm_reference(xr, wr, EPS).backward(dy)
    return xr.grad, wr.grad


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 16, generator=gen, dtype=torch.float64)
    w = torch.randn(16, generator=gen, dtype=torch.float64)
    return x, w, torch.randn(3, 4, 16, generator=gen, dtype=torch.float64)


def test_registry_runs_an_implementations_closed_form_backward(cpu_rms_norm: registry.Implementation) -> None:
    x, w, dy = _inputs()
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    rms_norm(xg, wg, EPS).backward(dy)
    assert calls == [(True, True, False)]
    want_x, want_w = _reference_grads(x, w, dy)
    torch.testing.assert_close(xg.grad, want_x)
    torch.testing.assert_close(wg.grad, want_w)


def test_gradients_not_asked_for_stay_none(cpu_rms_norm: registry.Implementation) -> None:
    x, w, dy = _inputs(1)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rms_norm(xg, w, EPS), [xg], dy)
    assert calls == [(True, False, False)]
    torch.testing.assert_close(grad, _reference_grads(x, w, dy)[0])


def test_a_declined_backward_falls_back_to_the_reference(cpu_rms_norm: registry.Implementation) -> None:
    cpu_rms_norm.backward = _declining_backward
    x, w, dy = _inputs(2)
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    rms_norm(xg, wg, EPS).backward(dy)
    assert calls == [("declined",)]
    want_x, want_w = _reference_grads(x, w, dy)
    torch.testing.assert_close(xg.grad, want_x)
    torch.testing.assert_close(wg.grad, want_w)


def test_the_kill_switch_skips_the_implementation(cpu_rms_norm: registry.Implementation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    x, w, dy = _inputs(3)
    xg = x.clone().requires_grad_(True)
    rms_norm(xg, w, EPS).backward(dy)
    assert calls == []
    torch.testing.assert_close(xg.grad, _reference_grads(x, w, dy)[0])


def test_compiled_training_step_traces_the_closed_form_backward(cpu_rms_norm: registry.Implementation) -> None:
    """AOT autograd traces the registered backward (what a compiled training step does with the
    CUDA kernels' backward custom ops) and its gradients are the reference's."""
    torch._dynamo.reset()
    x, w, dy = _inputs(4)
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

    @torch.compile(backend="aot_eager", fullgraph=True)
    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (rms_norm(a, b, EPS) * dy).sum()

    loss(xg, wg).backward()
    assert calls and calls[0] == (True, True, False)
    want_x, want_w = _reference_grads(x, w, dy)
    torch.testing.assert_close(xg.grad, want_x)
    torch.testing.assert_close(wg.grad, want_w)


# ----------------------------------------------------------------------------- fallbacks


@pytest.fixture
def fresh_kernels(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cuda_kernels' load state reset for the test, restored afterwards; implementations re-check."""
    saved = dict(cuda_kernels._state)
    cuda_kernels._state.update(tried=False, module=None, status="not loaded yet")
    impls = [i for op in registry.ops() for i in op.implementations.get("cuda", []) if i.name == cuda_kernels.NAME]
    for impl in impls:
        impl._ok = None
    try:
        yield
    finally:
        cuda_kernels._state.clear()
        cuda_kernels._state.update(saved)
        for impl in impls:
            impl._ok = None


def test_every_fused_op_has_a_cuda_implementation_with_a_backward() -> None:
    for op in cuda_kernels.KERNELS:
        (impl,) = [i for i in registry.get(op).implementations["cuda"] if i.name == cuda_kernels.NAME]
        assert impl.backward is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_without_a_gpu_the_kernels_are_off_and_the_references_run(fresh_kernels: None) -> None:
    assert cuda_kernels.load() is None
    assert "no CUDA device" in cuda_kernels.status()
    rows = {name: (active, available) for name, active, available in registry.describe("cuda")}
    for op in cuda_kernels.KERNELS:
        assert rows[op][0] == "torch"
        assert "cuda (cuda)" not in rows[op][1]


def _pretend_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "test GPU")


def test_missing_sources_turn_the_kernels_off(fresh_kernels: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _pretend_gpu(monkeypatch)
    monkeypatch.setenv("VOXKIT_CUDA_SOURCES", str(tmp_path))
    assert cuda_kernels.load() is None
    assert "not in" in cuda_kernels.status() and "rms_norm.cu" in cuda_kernels.status()


def test_a_failed_build_turns_the_kernels_off_with_the_reason(fresh_kernels: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _pretend_gpu(monkeypatch)
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path))

    def broken(sources: list[str], directory: Path) -> None:
        raise RuntimeError("Error building extension 'voxkit_cuda': nvcc not found")

    monkeypatch.setattr(cuda_kernels, "_build", broken)
    assert cuda_kernels.load() is None
    assert cuda_kernels.status().startswith("off: the build failed (Error building extension")
    assert not cuda_kernels.available()


def test_a_failed_self_check_turns_the_kernels_off(fresh_kernels: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _pretend_gpu(monkeypatch)
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cuda_kernels, "_build", lambda sources, directory: object())
    monkeypatch.setattr(cuda_kernels, "_self_check", lambda module: "rms_norm forward differs from the reference")
    assert cuda_kernels.load() is None
    assert "self-check failed (rms_norm forward differs" in cuda_kernels.status()


def test_the_kernel_sources_are_where_the_loader_looks() -> None:
    root = cuda_kernels.source_dir()
    for name in (*cuda_kernels.SOURCES, *cuda_kernels.HEADERS):
        assert (root / name).is_file(), name


# ----------------------------------------------------------------------------- wrappers on fake CUDA tensors


def _fake(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="cuda")


def test_what_the_kernels_accept() -> None:
    with FakeTensorMode():
        x, w = _fake(2, 3, 64), _fake(64)
        assert cuda_kernels.rms_norm_applies(x, w, EPS)
        assert not cuda_kernels.rms_norm_applies(x, w.float(), EPS)  # the reference's mixed-dtype product
        assert not cuda_kernels.rms_norm_applies(x.transpose(1, 2), _fake(3), EPS)  # last dim not contiguous
        assert not cuda_kernels.rms_norm_applies(_fake(2, 8192 * 8 + 8), _fake(8192 * 8 + 8), EPS)  # row too long
        assert cuda_kernels.ada_rms_norm_applies(x, w, _fake(2, 1, 64), EPS)
        assert not cuda_kernels.ada_rms_norm_applies(x, w, _fake(1, 1, 64), EPS)  # broadcast gain
        assert cuda_kernels.add_rms_norm_applies(x, _fake(2, 3, 64), w, EPS)
        gate, up = _fake(2, 3, 128).chunk(2, dim=-1)
        assert cuda_kernels.swiglu_applies(gate, up)
        assert not cuda_kernels.swiglu_applies(gate, up.float())
        q = _fake(2, 5, 3, 64).transpose(1, 2)  # [B, H, T, hd] over a [B, T, H, hd] buffer
        cos = _fake(1, 1, 5, 32, dtype=torch.float32)
        assert cuda_kernels.rope_applies(q, cos, cos)
        assert not cuda_kernels.rope_applies(q, cos[..., :4, :], cos[..., :4, :])
        assert not cuda_kernels.rope_applies(q, cos.bfloat16(), cos.bfloat16())
    assert not cuda_kernels.rms_norm_applies(torch.zeros(2, 4), torch.ones(4), EPS)  # a CPU tensor


def _shapes(grads: tuple) -> list:
    return [None if g is None else (tuple(g.shape), g.dtype) for g in grads]


def test_backward_wrappers_trace_on_fake_tensors() -> None:
    """The shapes a compiled backward sees from the kernels' custom ops (their fake implementations)."""
    bf16 = torch.bfloat16
    with FakeTensorMode():
        x, w, g = _fake(2, 3, 64), _fake(64), _fake(2, 1, 64)
        assert _shapes(cuda_kernels.rms_norm_backward([True, True, False], (_fake(2, 3, 64),), x, w, EPS)) == [
            ((2, 3, 64), bf16),
            ((64,), bf16),
            None,
        ]
        assert _shapes(cuda_kernels.ada_rms_norm_backward([True] * 3 + [False], (_fake(2, 3, 64),), x, w, g, EPS)) == [
            ((2, 3, 64), bf16),
            ((64,), bf16),
            ((2, 1, 64), bf16),
            None,
        ]
        # one output unused: its gradient comes as None
        assert _shapes(cuda_kernels.add_rms_norm_backward([True] * 3 + [False], (None, _fake(2, 3, 64)), x, x, w, EPS)) == [
            ((2, 3, 64), bf16),
            ((2, 3, 64), bf16),
            ((64,), bf16),
            None,
        ]
        q, cos = _fake(2, 5, 3, 64).transpose(1, 2), _fake(1, 1, 5, 32, dtype=torch.float32)
        assert _shapes(cuda_kernels.rope_backward([True, False, False], (_fake(2, 3, 5, 64),), q, cos, cos)) == [
            ((2, 3, 5, 64), bf16),
            None,
            None,
        ]
        assert cuda_kernels.rope_backward([True, True, True], (_fake(2, 3, 5, 64),), q, cos, cos) is None  # tables' grads
        gate, up = _fake(2, 3, 128).chunk(2, dim=-1)
        assert _shapes(cuda_kernels.swiglu_backward([True, True], (_fake(2, 3, 64),), gate, up)) == [
            ((2, 3, 64), bf16),
            ((2, 3, 64), bf16),
        ]


# ----------------------------------------------------------------------------- the load-time self-check


def _reference_kernel(op: str, forward_error: bool = False, backward_error: bool = False):  # type: ignore[no-untyped-def]
    """A stand-in "kernel" on the CPU: the reference forward and the closed-form backward, with an
    optional planted bug (the last element of every row left unwritten, or a doubled weight
    gradient)."""
    reference = cuda_kernels.KERNELS[op][3]

    def fn(*args):  # type: ignore[no-untyped-def]
        out = reference(*args)
        outs = out if isinstance(out, tuple) else (out,)
        if forward_error:
            outs = tuple(o.clone().index_fill_(-1, torch.tensor([o.shape[-1] - 1]), 0.0) for o in outs)
        return outs if isinstance(out, tuple) else outs[0]

    def backward(needs, grads, *args):  # type: ignore[no-untyped-def]
        expected = cuda_selfcheck.expected_grads(op, tuple(grads), list(args))
        result = [expected.get(i) for i in range(len(args))]
        result = [None if r is None else r.to(args[0].dtype) for r in result]
        if backward_error:
            result[1] = result[1] * 2
        return tuple(result)

    return fn, (lambda *args: True), backward, reference


@pytest.mark.parametrize("op", sorted(cuda_kernels.KERNELS))
def test_the_self_check_passes_a_correct_kernel(op: str) -> None:
    gen = torch.Generator().manual_seed(0)
    assert cuda_selfcheck.check_op(op, _reference_kernel(op), torch.device("cpu"), gen) is None


def test_the_self_check_catches_a_forward_that_leaves_elements_unwritten() -> None:
    gen = torch.Generator().manual_seed(0)
    problem = cuda_selfcheck.check_op("rms_norm", _reference_kernel("rms_norm", forward_error=True), torch.device("cpu"), gen)
    assert problem is not None and "forward output 0 differs" in problem


@pytest.mark.parametrize("op", ["ada_rms_norm", "swiglu"])
def test_the_self_check_catches_a_wrong_gradient(op: str) -> None:
    gen = torch.Generator().manual_seed(0)
    problem = cuda_selfcheck.check_op(op, _reference_kernel(op, backward_error=True), torch.device("cpu"), gen)
    assert problem is not None and "gradient of argument 1 differs" in problem


@pytest.mark.parametrize("op", sorted(cuda_kernels.KERNELS))
def test_the_kernels_take_every_self_check_input(op: str) -> None:
    """On a GPU the check must exercise the kernels, not find them declining its inputs."""
    applies = cuda_kernels.KERNELS[op][1]
    with FakeTensorMode():
        for dtype in cuda_selfcheck.DTYPES:
            for label, args in cuda_selfcheck.cases(op, dtype, torch.device("cuda"), None):
                assert applies(*args), f"{op} {label} {dtype}"


def test_expanded_and_permuted_gradients_trace() -> None:
    """A compiled backward may hand the kernels an expanded gradient (stride 0: the gradient of a
    sum) or a permuted one: the wrappers copy them into rows rather than fail."""
    with FakeTensorMode():
        x, w = _fake(2, 3, 64), _fake(64)
        expanded = _fake(3, 64).expand(2, 3, 64)
        permuted = _fake(3, 2, 64).transpose(0, 1)
        for dy in (expanded, permuted):
            dx, dweight, _ = cuda_kernels.rms_norm_backward([True, True, False], (dy,), x, w, EPS)
            assert tuple(dx.shape) == (2, 3, 64) and tuple(dweight.shape) == (64,)
        gate, up = _fake(2, 3, 128).chunk(2, dim=-1)
        dgate, dup = cuda_kernels.swiglu_backward([True, True], (expanded,), gate, up)
        assert tuple(dgate.shape) == tuple(dup.shape) == (2, 3, 64)
        assert not cuda_kernels.swiglu_applies(_fake(3, 2, 64).transpose(0, 1), _fake(2, 3, 64))


def test_long_rows_are_handed_over_aligned() -> None:
    """Rows longer than MAX_PACKS_PER_ROW elements only fit the kernels in 16-byte packs: a view
    at an offset that is no whole pack is copied first."""
    dim = 8 * 1536  # 12288, Mistral Large's width
    with FakeTensorMode():
        buffer = _fake(4, dim + 8)
        assert cuda_kernels._kernel_rows(buffer[:, :dim]).storage_offset() == 0  # a view, aligned
        shifted = cuda_kernels._kernel_rows(buffer[:, 4 : 4 + dim])
        assert shifted.storage_offset() == 0 and shifted.is_contiguous()  # a copy
        assert cuda_kernels._kernel_rows(_fake(4, 64 + 4)[:, 4:]).storage_offset() == 4  # short rows: no copy


def test_the_first_load_during_tracing_runs_on_real_tensors(fresh_kernels: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled step's backward is traced on fake tensors and may be where the kernels load
    first: their build and self-check must still see real tensors."""
    seen: list[bool] = []

    def fake_load() -> None:
        seen.append(isinstance(torch.zeros(2), torch._subclasses.fake_tensor.FakeTensor))
        return None

    monkeypatch.setattr(cuda_kernels, "_load", fake_load)
    with FakeTensorMode():
        assert not cuda_kernels.available()
    assert seen == [False]


def test_a_compiled_training_step_traces_the_reference_where_no_implementation_has_a_backward() -> None:
    """Without a closed-form backward the custom op's backward would rerun the reference's
    forward: under torch.compile with gradients the reference itself is traced (its autograd,
    e.g. SDPA's fused backward), and the implementation's forward is not used."""
    used: list[int] = []

    def forward_only(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        used.append(1)
        return rms_norm_reference(x, w, eps)

    registry.register_implementation("rms_norm", "cpu", "test-forward-only", forward_only)
    try:
        torch._dynamo.reset()
        x, w, dy = _inputs(5)
        xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

        @torch.compile(backend="aot_eager", fullgraph=True)
        def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (rms_norm(a, b, EPS) * dy).sum()

        loss(xg, wg).backward()
        assert used == []
        want_x, want_w = _reference_grads(x, w, dy)
        torch.testing.assert_close(xg.grad, want_x)
        torch.testing.assert_close(wg.grad, want_w)
        with torch.no_grad():  # no gradients: the custom op, whose body runs the implementation
            torch._dynamo.reset()
            torch.compile(lambda a, b: rms_norm(a, b, EPS), backend="aot_eager", fullgraph=True)(x, w)
        assert used
    finally:
        registry.unregister_implementation("rms_norm", "cpu", "test-forward-only")
