"""The 16-bit-weight product kernel (voxkit/ops/csrc/linear16.c) against its PyTorch reference."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from asr_helpers import chirp
from cpu_kernel_helpers import HAS_CC, KERNEL_CPU
from test_asr_streaming import run_stream
from test_stored_weights import rounded_model
from voxkit.ops import linear as linear_op
from voxkit.ops import native
from voxkit.ops.linear import ROWS_MAX, linear16_kernel, run_linear16, stored_linear
from voxkit.ops.stored_weights import keep_16bit_weights


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, w.float(), b)


def cases() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    g = torch.Generator().manual_seed(3)
    for storage in (torch.float16, torch.bfloat16):
        for rows in (1, 2, 3, 4, 5, 8):
            for N, K in ((1, 16), (7, 40), (33, 256), (9, 8)):
                w = (torch.randn(N, K, generator=g) * 0.3).to(storage)
                x = torch.randn(rows, K, generator=g)
                b = torch.randn(N, generator=g) if rows % 2 else None
                yield x, w, b


def test_kernel_matches_the_reference(one_thread: None) -> None:
    fn = linear16_kernel()
    if not HAS_CC:
        assert fn is None  # no compiler: the reference is used, nothing crashes
    elif KERNEL_CPU:
        assert fn is not None, "the kernel failed to build on an x86 machine with a C compiler"
    for x, w, b in cases():
        expected = reference(x, w, b)
        got = stored_linear(x, w, b)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        if fn is not None:
            torch.testing.assert_close(run_linear16(fn, x, w, b), expected, rtol=1e-5, atol=1e-5)


def test_leading_dims_strides_and_row_limit(one_thread: None) -> None:
    w = torch.randn(48, 64).half()
    x = torch.randn(2, 3, 128)[..., ::2]  # [2, 3, 64], last dim strided
    torch.testing.assert_close(stored_linear(x, w), reference(x, w, None), rtol=1e-5, atol=1e-5)
    many = torch.randn(ROWS_MAX + 1, 64)  # beyond the kernel's rows: torch's product
    assert torch.equal(stored_linear(many, w), reference(many, w, None))


@pytest.mark.skipif(not (KERNEL_CPU and HAS_CC), reason="instruction-set variants are x86 builds (AVX2 + F16C at least)")
@pytest.mark.parametrize(("extra", "isa"), [(("-mno-avx512f",), 1), (("-march=x86-64",), 0)])
def test_avx2_and_plain_builds(extra: tuple[str, ...], isa: int, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path))
    flags = ("-O3", "-march=native", *extra, "-shared", "-fPIC")
    lib = native.load("linear16", flags)
    assert lib is not None and lib.linear16_isa() == isa
    fn = linear16_kernel(flags)
    if isa == 0:
        assert fn is None  # no vector unit the kernel knows: voxkit keeps the reference
        return
    for x, w, b in cases():
        torch.testing.assert_close(run_linear16(fn, x, w, b), reference(x, w, b), rtol=1e-5, atol=1e-5)


def test_kill_switch_gives_the_reference_bit_for_bit(one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    for x, w, b in cases():
        assert torch.equal(stored_linear(x, w, b), reference(x, w, b))


def test_missing_compiler_falls_back(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert native.build("linear16", ("-O3", "-shared", "-fPIC")) is None
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    assert native.build("linear16", ("-O3", "-shared", "-fPIC")) is None
    assert not list(tmp_path.glob("kernels/*"))  # no half-written library left behind
    monkeypatch.delenv("CC")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path / "file"))  # a cache that cannot be created
    assert native.build("linear16", ("-O3", "-shared", "-fPIC")) is None


def test_threads_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    w, x = torch.randn(8, 32).half(), torch.randn(1, 32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert (linear_op.linear16(x, w) is not None) == (linear16_kernel() is not None)  # small: kernel
        monkeypatch.setattr(linear_op, "SMALL_WEIGHT_BYTES", 0)
        assert linear_op.linear16(x, w) is None  # "large" with two threads: torch's product
        torch.set_num_threads(1)
        assert (linear_op.linear16(x, w) is not None) == (linear16_kernel() is not None)
    finally:
        torch.set_num_threads(before)


def test_gradients_use_the_reference(one_thread: None) -> None:
    w = torch.randn(8, 32).half()
    x = torch.randn(1, 32, requires_grad=True)
    stored_linear(x, w).sum().backward()
    torch.testing.assert_close(x.grad, w.float().sum(0, keepdim=True))


def test_streaming_with_the_kernel_gives_the_same_tokens(one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    model = rounded_model(torch.float16)
    keep_16bit_weights(model)
    wav = chirp(1.5)
    with_kernel = run_stream(model, wav, delay=4)[0]
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    assert with_kernel == run_stream(model, wav, delay=4)[0]
    assert linear_op.linear16_kernel() is not None or not (KERNEL_CPU and HAS_CC)
