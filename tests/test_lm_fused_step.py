"""The fused CPU streaming step (lm/fused_step.py + ops/csrc/block_step.c) against the PyTorch modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import test_asr_streaming as streaming_tests
from asr_helpers import chirp, tiny_model
from cpu_kernel_helpers import CAN_BUILD
from test_asr_streaming import run_stream
from test_lm_cache import VARIANTS, VOCAB, _delay, _model
from test_stored_weights import rounded_model
from voxkit.lm import fused_step, transformer
from voxkit.lm.fusion import fuse_projections
from voxkit.ops.stored_weights import keep_16bit_weights


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """One thread (the fused path's condition); records whether each stack step took the fused path."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    calls: list[bool] = []

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = fused_step.fused_stack_step(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(transformer, "fused_stack_step", counted)
    yield calls
    torch.set_num_threads(before)


def test_the_kernel_builds_exactly_where_expected() -> None:
    assert (fused_step.block_step_library() is not None) == CAN_BUILD


@pytest.mark.parametrize("name", ["window", "window-per-layer", "ada-biases"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_fused_steps_match_the_full_forward(name: str, chunk: int, fused_calls: list[bool]) -> None:
    args = VARIANTS[name]
    model = _model(args)
    fuse_projections(model)
    tokens = torch.randint(0, VOCAB, (2, 30))
    delay = _delay(args, 2)
    with torch.no_grad():
        full = model(tokens, num_delay_tokens=delay)  # [2, 30, V]
        # tiny ring: wraps several times
        with model.streaming(2, capacity=(args.max_window or 40) + chunk) as state:
            steps = [model(tokens[:, t : t + chunk], state=state, num_delay_tokens=delay) for t in range(0, 30, chunk)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-5
    assert all(fused_calls) == CAN_BUILD and len(fused_calls) == len(steps)


@pytest.mark.parametrize("storage", [torch.float16, torch.bfloat16, None])
def test_recogniser_tokens_equal_the_modules(storage: torch.dtype | None, fused_calls: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    model = rounded_model(storage) if storage is not None else tiny_model()
    if storage is not None:
        keep_16bit_weights(model)
    fuse_projections(model)
    wav = chirp(2.0)
    fused = run_stream(model, wav, delay=4)[0]
    assert any(fused_calls) == CAN_BUILD
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    fused_calls.clear()
    assert fused == run_stream(model, wav, delay=4)[0]
    assert not any(fused_calls)


@pytest.mark.parametrize(
    "test",
    [
        streaming_tests.test_streaming_equals_offline_token_for_token,
        streaming_tests.test_random_chunk_sizes_give_the_same_tokens,
        streaming_tests.test_batched_streams_with_different_delays_match_each_alone,
        streaming_tests.test_restarting_one_slot_leaves_others_untouched,
        streaming_tests.test_chunked_steps_give_the_tokens_of_single_steps,
        streaming_tests.test_transcribe_batch_in_chunks_equals_live_stepping,
    ],
    ids=lambda f: f.__name__.removeprefix("test_"),
)
def test_streaming_guarantees_hold_on_the_fused_path(test, fused_calls: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The recogniser's streaming tests again, with fused projections (as load_bundle does) on one thread."""
    monkeypatch.setattr(streaming_tests, "tiny_model", lambda *a, **k: _fused(tiny_model(*a, **k)))
    test()
    assert any(fused_calls) == CAN_BUILD


def _fused(model: torch.nn.Module) -> torch.nn.Module:
    fuse_projections(model)
    return model


def test_fallbacks(fused_calls: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    args = VARIANTS["window"]
    tokens = torch.randint(0, VOCAB, (1, 4))

    def run(model: torch.nn.Module, grad: bool = False) -> None:
        with torch.set_grad_enabled(grad), model.streaming(1) as state:
            model(tokens, state=state)

    plain = _model(args)  # projections not fused: the modules run
    run(plain)
    assert fused_calls == [False]
    moe = _model(VARIANTS["moe"])
    fuse_projections(moe)
    run(moe)
    fused = _model(args)
    fuse_projections(fused)
    run(fused, grad=True)  # gradients: the modules run
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    run(fused)
    assert fused_calls == [False] * 4
    monkeypatch.delenv("VOXKIT_KERNELS")
    run(fused)
    assert fused_calls[-1] == CAN_BUILD
    torch.set_num_threads(2)
    run(fused)  # a small stack: fused whatever the thread count
    assert fused_calls[-1] == CAN_BUILD
    monkeypatch.setattr(fused_step, "SMALL_STACK_BYTES", 0)
    run(fused)  # a "large" stack with two threads: torch's threaded modules
    assert fused_calls[-1] is False
    torch.set_num_threads(1)
    run(fused)
    assert fused_calls[-1] == CAN_BUILD


def _steps(model: torch.nn.Module, tokens: torch.Tensor, delay: torch.Tensor | None, swap_at: int | None = None,
           new_state: dict | None = None) -> torch.Tensor:
    outs = []
    with torch.no_grad(), model.streaming(tokens.shape[0]) as state:
        for t in range(tokens.shape[1]):
            if t == swap_at:
                model.load_state_dict(new_state, assign=True)  # new tensors mid-session
            outs.append(model(tokens[:, t : t + 1], state=state, num_delay_tokens=delay))
    return torch.cat(outs, dim=1)


def test_parameters_replaced_mid_session_are_noticed(fused_calls: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    args = VARIANTS["ada-biases"]
    torch.manual_seed(1)
    new_state = {k: v.clone() for k, v in _model(args).state_dict().items()}
    tokens = torch.randint(0, VOCAB, (1, 8))
    delay = _delay(args, 1)
    results = []
    for mode in ("auto", "off"):
        monkeypatch.setenv("VOXKIT_KERNELS", mode)
        torch.manual_seed(0)
        model = _model(args)
        fuse_projections(model)
        results.append(_steps(model, tokens, delay, swap_at=4, new_state={k: v.clone() for k, v in new_state.items()}))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)
    assert fused_calls[:4] == [CAN_BUILD] * 4 and not any(fused_calls[4:8])  # the swap unfused q/k/v: modules


def test_a_delay_broadcast_over_the_batch_uses_the_modules(fused_calls: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(VARIANTS["ada-biases"])
    fuse_projections(model)
    tokens = torch.randint(0, VOCAB, (3, 5))
    one_delay = torch.tensor([4.0])  # [1] for 3 streams: gains [1, 1, D], broadcast by the modules
    fused = _steps(model, tokens, one_delay)
    assert not any(fused_calls)
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    assert torch.equal(fused, _steps(model, tokens, one_delay))


@pytest.mark.skipif(not CAN_BUILD, reason="the kernel needs an x86 C compiler and AVX2 + F16C")
def test_c_struct_layout_equals_the_ctypes_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = fused_step.native.load("block_step")
    assert lib is not None
    layout = fused_step.c_layout(lib)
    assert layout == fused_step.python_layout() and len(layout) == (1 + 3) + (1 + 13) + (1 + 14)  # size + fields each
    # A mirror that drifted from the C struct (a field added on one side) disables the kernel.
    monkeypatch.setattr(fused_step, "python_layout", lambda: [*layout[:-1], layout[-1] + 8])
    fused_step.block_step_library.cache_clear()
    try:
        assert fused_step.block_step_library() is None
    finally:
        monkeypatch.undo()
        fused_step.block_step_library.cache_clear()
    assert fused_step.block_step_library() is not None
