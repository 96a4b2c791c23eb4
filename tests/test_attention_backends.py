"""The CUDA attention backends on the CPU: FlexAttention (eager) against the reference, what each
backend declines, flash-attn's window arguments against its documented rule, and lm passing
windows to a registered backend with unchanged results."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from voxkit import ops
from voxkit.lm import Transformer, TransformerArgs
from voxkit.ops import attention_cuda, registry
from voxkit.ops.attention import attention_reference, band_mask, takes_windows
from voxkit.ops.attention_cuda import FlexWindowAttention, flash_applies, flash_arguments

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

NAME = "test-backend"


class Spy:
    """An implementation that records what it was called with, then runs ``fn`` (a new tensor)."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.calls: list[tuple[bool, bool, int | None]] = []  # (mask is None, is_causal, window)

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, is_causal: bool, window: Any, scale: Any
    ) -> torch.Tensor:
        self.calls.append((mask is None, is_causal, window))
        return self.fn(q, k, v, mask, is_causal, window, scale).clone()


@pytest.fixture
def on_cpu() -> Iterator[Callable[..., Spy]]:
    """Register an attention implementation for the CPU for one test (unregistered afterwards)."""
    names: list[str] = []

    def register(fn: Callable[..., torch.Tensor], applies: Callable[..., bool] | None = None) -> Spy:
        spy = Spy(fn)
        name = f"{NAME}-{len(names)}"
        registry.register_implementation("attention", "cpu", name, spy, applies=applies)
        names.append(name)
        return spy

    yield register
    for name in names:
        registry.unregister_implementation("attention", "cpu", name)
    assert "cpu" not in registry.get("attention").implementations


def qkv(B: int, H: int, Hkv: int, T: int, S: int, hd: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    q = torch.randn(B, T, H, hd, dtype=dtype).transpose(1, 2)  # [B, H, T, hd], laid out as the model's
    k = torch.randn(B, S, Hkv, hd, dtype=dtype).transpose(1, 2)  # [B, Hkv, S, hd]
    v = torch.randn(B, S, Hkv, hd, dtype=dtype).transpose(1, 2)
    return q, k, v


# ----------------------------------------------------------------------------- FlexAttention


CASES = {
    # (B, H, Hkv, T, S, hd, causal, window)
    "causal-window": (2, 4, 4, 32, 32, 16, True, 8),
    "bidirectional-window": (2, 4, 4, 32, 32, 16, False, 5),
    "gqa-causal-window": (1, 8, 2, 40, 40, 32, True, 7),
    "gqa-bidirectional": (2, 4, 1, 19, 19, 16, False, 3),
    "decode-one-query": (2, 4, 2, 1, 23, 16, True, 6),
    "decode-chunk": (1, 4, 2, 5, 37, 16, True, 9),
    "decode-no-window": (1, 4, 2, 3, 17, 16, True, None),
    "bidirectional-fewer-queries": (1, 2, 2, 6, 29, 16, False, 4),
    "odd-sizes": (3, 6, 3, 37, 37, 24, True, 11),
    "window-of-one": (1, 2, 2, 9, 9, 16, True, 1),
    "window-past-the-keys": (1, 2, 1, 13, 13, 16, True, 50),
    "past-a-block": (1, 2, 2, 150, 150, 16, True, 33),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_flex_equals_the_reference(case: str) -> None:
    B, H, Hkv, T, S, hd, causal, window = CASES[case]
    q, k, v = qkv(B, H, Hkv, T, S, hd)
    flex = FlexWindowAttention(compiled=False)
    args = (q, k, v, None, causal, window, None)
    assert flex.applies(*args)
    out = flex(*args)
    assert out.shape == (B, H, T, hd) and out.data_ptr() not in (q.data_ptr(), k.data_ptr(), v.data_ptr())
    torch.testing.assert_close(out, attention_reference(*args), atol=2e-6, rtol=1e-5)


def test_flex_scale_and_dispatch(on_cpu: Callable[..., Spy]) -> None:
    flex = FlexWindowAttention(compiled=False)
    spy = on_cpu(flex, flex.applies)
    q, k, v = qkv(2, 4, 2, 21, 21, 16)
    out = ops.attention(q, k, v, is_causal=True, window=6, scale=0.3)
    assert spy.calls == [(True, True, 6)]
    torch.testing.assert_close(out, attention_reference(q, k, v, None, True, 6, 0.3), atol=2e-6, rtol=1e-5)
    ops.attention(q, k, v, is_causal=True)  # plain causal: declined, SDPA's built-in mask
    ops.attention(q, k, v, mask=band_mask(21, 21, True, 6, q.device), is_causal=False)  # a mask: declined
    assert len(spy.calls) == 1


def test_block_masks_are_built_once_per_band() -> None:
    attention_cuda.block_mask.cache_clear()
    flex = FlexWindowAttention(compiled=False)
    q, k, v = qkv(1, 2, 2, 16, 16, 16)
    for _ in range(3):
        flex(q, k, v, None, True, 4, None)
    flex(q, k, v, None, False, 4, None)
    info = attention_cuda.block_mask.cache_info()
    assert (info.misses, info.hits) == (2, 2)


DECLINED = {
    "float-mask (ALiBi)": dict(mask="float"),
    "bool-mask (even the band)": dict(mask="band"),
    "plain causal": dict(window=None),
    "bidirectional without window": dict(causal=False, window=None),
    "more queries than keys": dict(T=9, S=5),
    "float64": dict(dtype=torch.float64),
    "head_dim below 16": dict(hd=8),
    "head_dim above 256": dict(hd=320),
    "query heads per key head not a power of two": dict(H=6, Hkv=2),
    "window 0": dict(window=0),
    "records gradients": dict(grad=True),
}


def _declined_args(**kw: Any) -> tuple[Any, ...]:
    p: dict[str, Any] = dict(B=1, H=4, Hkv=2, T=8, S=8, hd=16, dtype=torch.float32, causal=True, window=3, mask=None, grad=False)
    p.update(kw)
    q, k, v = qkv(p["B"], p["H"], p["Hkv"], p["T"], p["S"], p["hd"], p["dtype"])
    if p["grad"]:
        q.requires_grad_(True)
    mask = {None: None, "band": band_mask(p["T"], p["S"], True, 3, q.device), "float": torch.zeros(1, p["H"], p["T"], p["S"])}[p["mask"]]
    return q, k, v, mask, p["causal"], p["window"], None


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_flex_declines_what_it_does_not_compute_exactly(case: str) -> None:
    assert FlexWindowAttention(compiled=False).applies(*_declined_args())  # the base case applies
    assert not FlexWindowAttention(compiled=False).applies(*_declined_args(**DECLINED[case]))


def test_compiled_flex_stops_at_its_shape_budget() -> None:
    flex = FlexWindowAttention(compiled=True, max_shapes=1)
    first, other = _declined_args(), _declined_args(T=16, S=16)
    assert flex.applies(*first) and flex.applies(*other)
    flex.shapes.add(flex.shape_key(first[0], first[1], True, 3, None))  # as a compiled call records it
    assert flex.applies(*first)
    assert not flex.applies(*other)


def test_a_failing_compiled_flex_falls_back_to_the_reference(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Callable[..., torch.Tensor]:
        def run(*args: Any, **kwargs: Any) -> torch.Tensor:
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(attention_cuda, "_compiled_flex", broken)
    flex = FlexWindowAttention(compiled=True)
    args = _declined_args()
    with caplog.at_level(logging.WARNING, "voxkit.ops"):
        out = flex(*args)
    assert "compiled FlexAttention failed" in caplog.text
    torch.testing.assert_close(out, attention_reference(*args))
    assert not flex.applies(*args)  # off for the rest of the process


# ----------------------------------------------------------------------------- flash-attn


def flash_visible(T: int, S: int, causal: bool, window_size: tuple[int, int]) -> torch.Tensor:
    """[T, S] bool from flash-attn's documented rule (flash_attn_func's docstring): query i attends
    to keys in [i + S - T - left, i + S - T + right] inclusive, -1 = unbounded; causal=True is
    bottom-right aligned (key <= i + S - T)."""
    left, right = window_size
    allowed = torch.zeros(T, S, dtype=torch.bool)
    for i in range(T):
        p = i + S - T
        for j in range(S):
            ok = (left < 0 or j >= p - left) and (right < 0 or j <= p + right)
            allowed[i, j] = ok and (not causal or j <= p)
    return allowed


@pytest.mark.parametrize("causal", [True, False])
def test_flash_window_arguments_follow_the_documented_rule(causal: bool) -> None:
    windows = [1, 2, 3, 7, 40, None] if causal else [1, 2, 3, 7, 40]
    for T, S in [(1, 1), (6, 6), (1, 9), (4, 11), (13, 13)]:
        for window in windows:
            flash_causal, window_size = flash_arguments(causal, window)
            expected = band_mask(T, S, causal, window, torch.device("cpu"))
            assert torch.equal(flash_visible(T, S, flash_causal, window_size), expected), (T, S, window)
    assert flash_arguments(True, 4096) == (True, (4095, 0))
    assert flash_arguments(False, 5) == (False, (4, 4))


def test_flash_declines_what_it_does_not_compute_exactly() -> None:
    ok = dict(dtype=torch.bfloat16)
    assert flash_applies(*_declined_args(**ok))
    assert flash_applies(*_declined_args(window=None, **ok))  # plain causal too
    assert flash_applies(*_declined_args(causal=False, window=None, **ok))  # and no mask at all
    assert flash_applies(*_declined_args(H=6, Hkv=2, hd=8, **ok))  # any GQA group, small heads
    for bad in (dict(dtype=torch.float32), dict(mask="float"), dict(mask="band"), dict(hd=320), dict(T=9, S=5), dict(grad=True)):
        assert not flash_applies(*_declined_args(**{**ok, **bad})), bad


def test_registered_for_cuda_and_unavailable_here() -> None:
    chain = [i.name for i in registry.get("attention").implementations["cuda"]]
    assert chain[0] == attention_cuda.FLASH_NAME and chain[-1] == attention_cuda.FLEX_NAME
    if not torch.cuda.is_available():
        assert not attention_cuda.flash_available() and not attention_cuda.flex_available()
        assert not takes_windows(torch.device("cpu"))


# ----------------------------------------------------------------------------- lm passes windows


def small(**overrides: Any) -> Transformer:
    base: dict[str, Any] = dict(dim=64, n_layers=3, head_dim=16, hidden_dim=96, n_heads=4, n_kv_heads=2, vocab_size=0, norm_eps=1e-5)
    base.update(overrides)
    torch.manual_seed(0)
    return Transformer(TransformerArgs(**base)).eval()


MODELS = {
    "causal windows": dict(sliding_window=[3, 5, 40]),
    "bidirectional windows": dict(sliding_window=4, causal=False),
    "alibi windows": dict(positions="alibi", sliding_window=[3, 5]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lm_offline_is_unchanged_when_windows_reach_a_backend(name: str, on_cpu: Callable[..., Spy]) -> None:
    model, x = small(**MODELS[name]), torch.randn(2, 11, 64)
    with torch.no_grad():
        before = model.forward_embeddings(x)
        spy = on_cpu(attention_reference)  # the reference itself, now given numbers instead of masks
        assert takes_windows(x.device)
        after = model.forward_embeddings(x)
    assert torch.equal(before, after)  # bit for bit
    if name == "alibi windows":
        assert all(not no_mask and window is None for no_mask, _, window in spy.calls)  # its biases, as before
    else:
        causal = model.args.causal
        # window 40 >= T: no band, the built-in causal mask as before
        expected = [(True, causal, w if w < 11 else None) for w in (model.args.window_for_layer(i) for i in range(3))]
        assert spy.calls == expected


@pytest.mark.parametrize("name", ["causal windows", "bidirectional windows"])
def test_lm_offline_through_flex_matches(name: str, on_cpu: Callable[..., Spy]) -> None:
    model, x = small(**MODELS[name]), torch.randn(2, 11, 64)
    with torch.no_grad():
        before = model.forward_embeddings(x)
        flex = FlexWindowAttention(compiled=False)
        spy = on_cpu(flex, flex.applies)
        after = model.forward_embeddings(x)
    assert len(spy.calls) == 2 if name == "causal windows" else len(spy.calls) == 3
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_lm_keeps_masks_for_given_positions_streaming_and_kill_switch(on_cpu: Callable[..., Spy], monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = small(sliding_window=4), torch.randn(1, 9, 64)
    with torch.no_grad():
        spy = on_cpu(attention_reference)
        model.forward_embeddings(x, positions=torch.arange(9) + 5)  # positions of the caller: its band
        assert all(not no_mask and window is None for no_mask, _, window in spy.calls)
        spy.calls.clear()
        state = model.init_state(1)
        model.forward_embeddings(x, state=state)  # the ring's masks
        assert spy.calls and all(not no_mask and window is None for no_mask, _, window in spy.calls)
        monkeypatch.setenv("VOXKIT_KERNELS", "off")
        assert not takes_windows(x.device)


def test_backends_found_unavailable_leave_the_masks_to_the_caller(on_cpu: Callable[..., Spy]) -> None:
    """Registered but found not to work here (no flash-attn, no Triton): each layer would rebuild
    its band from the number, so the caller keeps building it once."""
    on_cpu(attention_reference)
    impl = registry.get("attention").implementations["cpu"][0]
    assert takes_windows(torch.device("cpu"))  # not checked yet: a backend may take the windows
    impl._ok = False
    assert not takes_windows(torch.device("cpu"))
