"""CUDA graphs for decode steps: a whole step replays as one launch instead of hundreds.

Why: a decode step at batch 1 (or a few streams in lock-step) is a few hundred small kernels, and on
a GPU their launch cost, not reading the weights, bounds the step (docs/benchmarks.md: the compiled
step reaches half of the weights-read floor). A CUDA graph records the kernels of one step once and
replays them with one launch, on the same memory addresses. So everything a step reads or writes
lives in tensors allocated once, before the capture, and changed in place only:

- the caches: a :class:`~voxkit.lm.cache.RingState` made with ``static=True``, so that every step
  reads the whole ring (no host sync to find the written part: ``StepPlan.used`` is the capacity).
  A step's writes into the ring, a scatter at slots computed on the device from ``state.offset``,
  are in-place writes to fixed addresses and replay as recorded; so does ``state.offset += 1``;
- the inputs: buffers the caller copies into before each replay (:attr:`DecodeGraph.tokens`);
- the output: the tensor the captured call returned, overwritten by every replay (read or copy it
  before the next replay);
- the weights: a graph reads the parameters where they were when it was recorded, so the model
  must stay as it is while its graphs live (no ``.to()``, no ``fuse_projections`` afterwards).

A captured step must not synchronise with the host (``.item()``, ``bool(tensor)``, ``torch.equal``,
``nonzero``, a GPU tensor made from Python data): capture fails there, and a Python branch taken on
a value would stay frozen at the value seen while capturing. Two parts of the stack need care:

- Ada-RMSNorm: an eager streaming call reuses the delay gains cached in the state after comparing
  the delays on the host (``Transformer.delay_gains``). :class:`CapturedStep` empties that cache
  before capturing, so the graph computes the gains in every replay from the delay buffer, and a
  stream's delay may change between replays (a restarted stream of a live session);
- mixture of experts: the routing gathers each expert's tokens with ``nonzero`` (shapes that depend
  on the data): refused by :func:`check_capturable`.

Capture follows PyTorch's recipe: a few warm-up calls on a side stream (lazy initialisation: cuBLAS
workspaces, cuFFT plans, kernels built on first use, the op registry's availability checks), then
one recorded call. Warm-up calls really run and advance the streams they step, so capture on fresh
state and reset it afterwards (:class:`DecodeGraph` and the recogniser's session do).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence

import torch

from voxkit.lm.cache import RingState
from voxkit.lm.generate import decode_step
from voxkit.lm.transformer import Transformer

WARMUP_CALLS = 3  # eager calls before the capture (PyTorch's examples use 3)
_CAPTURE_LOCK = threading.Lock()


def check_device(device: torch.device) -> None:
    """Refuse CUDA graphs anywhere but on a CUDA device, with the way out in the message."""
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(
            f"CUDA graphs (graphs=True) need the model on a CUDA GPU; it is on {device}. Leave graphs off here "
            "(on a CPU the fused step already runs each block as one call)"
        )


def check_fft_plans(device: torch.device) -> None:
    """Refuse graphs that would record an FFT (the recogniser's log-mel) without cuFFT's plan
    cache: the graph would hold a plan destroyed right after the capture."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if torch.backends.cuda.cufft_plan_cache[index].max_size == 0:
        raise ValueError(
            "CUDA graphs of the recogniser record its FFT, which needs cuFFT's plan cache: "
            "torch.backends.cuda.cufft_plan_cache.max_size is 0 here; raise it or leave graphs off"
        )


def check_capturable(model: Transformer) -> None:
    """Refuse a stack whose streaming step cannot be recorded once and replayed."""
    if model.args.moe is not None:
        raise ValueError(
            "a mixture-of-experts stack cannot be captured as a CUDA graph: its routing gathers each "
            "expert's tokens with nonzero(), whose size the host must read every step"
        )
    if not model.args.causal:
        raise ValueError("a bidirectional stack does not stream, so it has no decode step to capture")


def recorded_with(model: torch.nn.Module) -> tuple[object, ...]:
    """What a recorded step of ``model`` depends on besides its inputs: where every parameter
    and buffer lives (a graph reads them at the addresses it saw) and the kernel switch (it
    recorded one implementation per op). A different value means the graph is stale."""
    from voxkit.ops.dispatch import kernels_enabled

    return (kernels_enabled(), *(t.data_ptr() for t in (*model.parameters(), *model.buffers())))


def forget_gains(rings: Sequence[RingState]) -> None:
    """Drop the Ada-RMSNorm gains cached in these states (the next call recomputes them)."""
    for ring in rings:
        ring.gains = None


class CapturedStep:
    """``fn()`` recorded once as a CUDA graph on ``device`` (the GPU its tensors live on);
    :meth:`replay` runs the same kernels again.

    ``fn`` takes no arguments: it reads its inputs from tensors that outlive it and updates its
    state in place. What it returns becomes :attr:`output`, which every replay overwrites.
    ``rings``: the streaming states ``fn`` steps, whose cached Ada-RMSNorm gains must be computed
    inside the graph (see the module doc). Warm-up calls change the state as real calls do.
    """

    def __init__(
        self,
        fn: Callable[[], torch.Tensor],
        device: torch.device,
        *,
        rings: Sequence[RingState] = (),
        warmup: int = WARMUP_CALLS,
    ) -> None:
        self.fn = fn
        # Warm-up and capture on a side stream of the model's own GPU: torch.cuda.graph's default
        # capture stream belongs to whichever GPU was current at the process's first capture.
        self.device = device
        with self._on_device(device):
            self._warm_up(fn, warmup)
            forget_gains(rings)
            try:
                self.output = self._record(fn)
            finally:
                # The gains set while recording live in the graph's memory and hold nothing until a
                # replay writes them: an eager call must not reuse them.
                forget_gains(rings)

    def _on_device(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        """``device`` made current, with the side stream that warms up and captures on it."""
        self._stream = torch.cuda.Stream(device=device)
        return torch.cuda.device(device)

    def _warm_up(self, fn: Callable[[], torch.Tensor], calls: int) -> None:
        side = self._stream
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(calls):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _record(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        self.graph = torch.cuda.CUDAGraph()
        # One capture at a time per process, and only the capturing thread's calls checked: other
        # threads (other sessions of a server) keep allocating and syncing while this one records.
        capture = torch.cuda.graph(self.graph, stream=self._stream, capture_error_mode="thread_local")
        with _CAPTURE_LOCK, torch.inference_mode(), capture:
            return fn()

    def replay(self) -> torch.Tensor:
        self.graph.replay()
        return self.output


class DecodeGraph:
    """One decode step of a :class:`Transformer` over a static ring state, as a CUDA graph.

    ``state`` (``model.init_state(B, capacity=..., static=True)``) must be fresh: the warm-up steps
    run on it and the constructor then empties it again. The graph is bound to the state's memory:
    prefill the prompts eagerly into the same state, then call :meth:`step` once per token.
    ``num_delay_tokens`` [B] is the delay of a delay-conditioned decoder (the recogniser's), copied
    into :attr:`delays`, which may be changed in place between steps. ``step`` is the function to
    capture, ``(tokens [B], state, delays) -> logits [B, V]``: :func:`~voxkit.lm.generate.decode_step`
    or a ``torch.compile``'d version of it (compiled on its first warm-up call, before the capture).
    """

    def __init__(
        self,
        model: Transformer,
        state: RingState,
        *,
        num_delay_tokens: torch.Tensor | None = None,
        step: Callable[[torch.Tensor, RingState, torch.Tensor | None], torch.Tensor] | None = None,
        warmup: int = WARMUP_CALLS,
    ) -> None:
        check_capturable(model)
        if model.tok_embeddings is None:
            raise ValueError("a decode step needs a text decoder (vocab_size > 0)")
        if not state.static:
            raise ValueError("a captured step needs a static state: model.init_state(..., static=True)")
        if model.args.ada_rms_norm_t_cond and num_delay_tokens is None:
            raise ValueError("this decoder is delay-conditioned (Ada-RMSNorm): pass num_delay_tokens")
        device = state.offset.device
        check_device(device)
        B = state.offset.shape[0]
        self.model = model
        self.state = state
        self.tokens = torch.zeros(B, dtype=torch.long, device=device)  # [B] input of every replay
        self.delays: torch.Tensor | None = None
        if model.args.ada_rms_norm_t_cond:
            assert num_delay_tokens is not None
            self.delays = torch.empty(B, dtype=torch.float32, device=device)  # [B]
            self.delays.copy_(num_delay_tokens)
        run = step or functools.partial(decode_step, model)
        delays = self.delays

        def captured() -> torch.Tensor:
            return run(self.tokens, state, delays)  # [B, V]

        self.recorded_with = recorded_with(model)
        self._captured = CapturedStep(captured, device, rings=[state], warmup=warmup)
        self.reset()

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def reset(self, num_delay_tokens: torch.Tensor | None = None) -> None:
        """Empty every stream of the state (the graph stays valid: nothing moves), optionally with new delays."""
        self.state.reset()
        if num_delay_tokens is not None and self.delays is not None:
            self.delays.copy_(num_delay_tokens)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B] -> next-token logits [B, V] (the graph's output buffer: overwritten by the next step)."""
        with torch.inference_mode():
            self.tokens.copy_(tokens)
            return self._captured.replay()
