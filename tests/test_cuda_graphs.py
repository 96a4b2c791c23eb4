"""Decode steps recorded as CUDA graphs (lm/graphs.py): the backbone's Generator and the recogniser's
lock-step streaming session.

On a GPU (tests marked ``cuda``) the replayed graphs must give the eager tokens, in float32, for one
stream and for four streams of different lengths. Without a GPU the tests check what decides whether
a step can be recorded at all: the options refuse a CPU with a clear message; the exact functions
that get captured make no host synchronisation (an op that would make the host wait for the GPU, or
copy host data to it, which CUDA refuses during a capture); the tensors they work on never move (a
graph replays fixed addresses); and the capture bookkeeping (warm-up calls that really step the
streams, then a reset; inputs copied into buffers before each replay; an output overwritten by each
replay) gives the eager tokens. For that, :class:`RerunCapture` stands in for
:class:`~voxkit.lm.graphs.CapturedStep`: same warm-up and state handling, the "captured" call
checked for host synchronisation, and each replay calling the function again into the output buffer.
What only a GPU shows (that CUDA accepts the capture, that replays give the eager tokens) is in the
``cuda`` tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import asr_helpers
import test_lm_cache as lm_cache_tests
from test_generate import tiny_model as lm_model
from voxkit.asr.session import StreamingSession
from voxkit.lm import MoeArgs, Transformer, TransformerArgs, graphs
from voxkit.lm.cache import plan_step
from voxkit.lm.generate import Generator
from voxkit.streaming import StreamingState
from voxkit.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
PROMPTS = [[5, 17, 3, 9, 22], [40, 2], [7, 7, 1, 30, 12, 11, 50, 8, 19], [33]]  # four lengths
NEW_TOKENS = 20
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# ----------------------------------------------------------------------------- host syncs


class HostSyncs(TorchDispatchMode):
    """Records the ops of a call that would synchronise with the host on a GPU.

    ``_local_scalar_dense`` is what ``.item()``, ``bool()``, ``int()`` and ``float()`` of a tensor
    run; ``lift_fresh`` is a tensor made from Python data (on a GPU, a copy from host memory);
    the others have output sizes that depend on the data. ``tolist``/``numpy`` do not dispatch an
    op, so they are patched while the mode is on.
    """

    SYNCING = {"_local_scalar_dense", "nonzero", "equal", "is_nonzero", "masked_select", "lift_fresh",
               "unique", "_unique", "_unique2", "unique_consecutive", "unique_dim"}
    REPEATS_FROM_DATA = {"aten.repeat_interleave.Tensor", "aten.repeat_interleave.self_Tensor"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._patched: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        bool_index = name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ())
        )
        repeats_from_data = str(func) in self.REPEATS_FROM_DATA and kwargs.get("output_size") is None
        if name in self.SYNCING or bool_index or repeats_from_data:
            self.found.append(str(func))
        return func(*args, **kwargs)

    def __enter__(self) -> HostSyncs:
        for method in ("tolist", "numpy"):
            assert method not in vars(torch.Tensor)  # inherited from the C base class: shadowed, then unshadowed
            original = getattr(torch.Tensor, method)

            def recording(tensor: torch.Tensor, *a: Any, _m: str = method, _o: Any = original, **k: Any) -> Any:
                self.found.append(f"Tensor.{_m}")
                return _o(tensor, *a, **k)

            setattr(torch.Tensor, method, recording)
            self._patched.append(method)
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for method in self._patched:
            delattr(torch.Tensor, method)
        self._patched.clear()


class RerunCapture(graphs.CapturedStep):
    """Stands in for :class:`voxkit.lm.graphs.CapturedStep` without a GPU (see the module doc).

    It keeps CapturedStep's handling of the state and replaces the GPU parts: plain warm-up calls;
    a "capture" that runs the call under :class:`HostSyncs` (what it finds is collected in
    ``found``); replays that call the function again and write its result into the output buffer,
    as a graph's replay overwrites it."""

    found: list[str] = []
    made: list[RerunCapture] = []

    def _on_device(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def _warm_up(self, fn: Callable[[], torch.Tensor], calls: int) -> None:
        with torch.inference_mode():
            for _ in range(calls):
                fn()

    def _record(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        # A real capture records this call without running it; its callers reset the state anyway.
        with torch.inference_mode(), HostSyncs() as syncs:
            output = fn()
        RerunCapture.found += syncs.found
        RerunCapture.made.append(self)
        return output

    def replay(self) -> torch.Tensor:
        with torch.inference_mode():
            self.output.copy_(self.fn())
        return self.output


@pytest.fixture
def rerun(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[RerunCapture]]:
    """CPU stand-ins: any device accepted, RerunCapture for CapturedStep; the CPU-only fused C step
    off (on a GPU the modules run, so those are what must be capturable)."""
    monkeypatch.setattr(graphs, "check_device", lambda device: None)
    monkeypatch.setattr(graphs, "check_fft_plans", lambda device: None)
    monkeypatch.setattr(graphs, "CapturedStep", RerunCapture)
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    RerunCapture.found, RerunCapture.made = [], []
    yield RerunCapture


def tensor_addresses(*objects: object) -> dict[str, int]:
    """name -> data address of every tensor reachable from streaming states, lists and the given tensors."""
    out: dict[str, int] = {}

    def walk(value: object, name: str) -> None:
        if isinstance(value, torch.Tensor):
            out[name] = value.data_ptr()
        elif isinstance(value, StreamingState):
            for f in dataclasses.fields(value):
                if f.name not in ("gains", "fused"):  # caches the step itself may replace (lm/cache.py)
                    walk(getattr(value, f.name), f"{name}.{f.name}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{name}[{i}]")

    for i, value in enumerate(objects):
        walk(value, f"#{i}")
    return out


# ----------------------------------------------------------------------------- helpers


def delay_decoder() -> Transformer:
    """The recogniser's text decoder: Ada-RMSNorm delay conditioning, tied embeddings."""
    return asr_helpers.tiny_model().decoder.float()


def session_tokens(
    model: torch.nn.Module, waves: Sequence[torch.Tensor], delays: Sequence[int], *, graphs: bool = False,
    chunk_steps: int = 1, device: str = "cpu",
) -> list[list[int]]:
    """Every output token of each stream, all streams stepping in lock-step in one session."""
    session = StreamingSession(model, TOK, len(waves), device=device, chunk_steps=chunk_steps, graphs=graphs)
    for b, (w, d) in enumerate(zip(waves, delays, strict=True)):
        session.start(b, d)
        session.push(b, w)
        session.finish(b)
    out: list[list[int]] = [[] for _ in waves]
    rng = np.random.default_rng(0)
    while session.active:
        active = session.active
        n = int(rng.integers(1, min(session.steps_ready(), chunk_steps) + 1))
        session.step(n)
        for b in active:
            out[b].extend(session.tokens_out[b, :n].tolist())
    session.close()
    return out


WAVES = [asr_helpers.chirp(1.2, seed=4), asr_helpers.chirp(2.1, seed=5), asr_helpers.chirp(0.7, seed=6), asr_helpers.chirp(1.5, seed=7)]
DELAYS = [2, 5, 1, 3]


# ----------------------------------------------------------------------------- refusals (CPU)


def test_graphs_refuse_a_model_on_the_cpu() -> None:
    model = lm_model().float()
    with pytest.raises(ValueError, match="CUDA graphs .* need the model on a CUDA GPU; it is on cpu"):
        Generator(model, graphs=True)
    with pytest.raises(ValueError, match="on a CUDA GPU; it is on cpu"):
        graphs.DecodeGraph(model, model.init_state(1, capacity=16, static=True))
    with pytest.raises(ValueError, match="on a CUDA GPU; it is on cpu"):
        StreamingSession(asr_helpers.tiny_model(), TOK, 2, graphs=True)
    Generator(model)  # without graphs nothing changes
    StreamingSession(asr_helpers.tiny_model(), TOK, 2).close()


def test_graphs_refuse_what_cannot_be_recorded() -> None:
    model = lm_model().float()
    with pytest.raises(ValueError, match="static state"):
        graphs.DecodeGraph(model, model.init_state(1, capacity=16))
    moe = Transformer(TransformerArgs(dim=16, n_layers=1, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=1, vocab_size=11,
                                      moe=MoeArgs(num_experts=4, num_experts_per_tok=2), max_seq_len=32))
    with pytest.raises(ValueError, match="mixture-of-experts .* nonzero"):
        Generator(moe, graphs=True)
    with pytest.raises(ValueError, match="delay-conditioned"):
        graphs.DecodeGraph(delay_decoder(), delay_decoder().init_state(1, capacity=16, static=True))


# ----------------------------------------------------------------------------- what gets captured (CPU)


def test_a_static_step_reads_the_whole_ring() -> None:
    """Why a captured step needs a static state: a young ring's step otherwise reads only its
    written slots, a count the host must read from the device (on a CPU; on a GPU every state
    reads the whole ring), so the step's shapes would change with the position."""
    model = lm_model().float()
    young, static = model.init_state(2, capacity=16), model.init_state(2, capacity=16, static=True)
    assert plan_step(young, 1).used == 1
    with HostSyncs() as syncs:
        plan = plan_step(static, 1)
    assert plan.used == 16 and syncs.found == []


def test_the_host_sync_check_sees_what_breaks_a_capture() -> None:
    """The check is not vacuous: a cached Ada-RMSNorm gain is reused after ``torch.equal`` of the
    delays (why CapturedStep empties that cache first), and a tensor made from a number is a copy
    from the host (why the log-mel floor is a plain number)."""
    model = delay_decoder()
    state = model.init_state(1, capacity=16, static=True)
    delays, token = torch.tensor([3.0]), torch.tensor([[1]])
    with torch.inference_mode():
        model(token, state=state, num_delay_tokens=delays)  # caches the gains
        with HostSyncs() as syncs:
            model(token, state=state, num_delay_tokens=delays)
        assert syncs.found == ["aten.equal.default"]
        with HostSyncs() as syncs:
            torch.maximum(torch.zeros(3), torch.tensor(1.0))
            token.tolist()
        assert syncs.found == ["aten.lift_fresh.default", "Tensor.tolist"]


@pytest.mark.parametrize("model_name", ["window", "full", "delay"])
def test_captured_decode_step_makes_no_host_sync_and_keeps_its_tensors(rerun: type[RerunCapture], model_name: str) -> None:
    model = {"window": lambda: lm_model(6).float(), "full": lambda: lm_model(None).float(), "delay": delay_decoder}[model_name]()
    gen = Generator(model, prefill_chunk=3, graphs=True, num_delay_tokens=3.0 if model_name == "delay" else None)
    gen.generate(PROMPTS, NEW_TOKENS)
    graph = gen._graph
    assert graph is not None and graph.state.static and rerun.made and rerun.found == []
    before = tensor_addresses(graph.state, graph.tokens, graph.delays, graph._captured.output)
    gen.generate(PROMPTS, NEW_TOKENS)  # the kept graph again (same shape): reset, prefill, 19 replays
    assert gen._graph is graph
    assert tensor_addresses(graph.state, graph.tokens, graph.delays, graph._captured.output) == before


@pytest.mark.parametrize("encoder_delay", [False, True])
def test_captured_session_steps_make_no_host_sync_and_keep_their_tensors(rerun: type[RerunCapture], encoder_delay: bool) -> None:
    model = asr_helpers.tiny_model(encoder_delay=encoder_delay)
    session = StreamingSession(model, TOK, 3, graphs=True)
    assert len(rerun.made) == 2 and rerun.found == []  # the encoder's step and the decoder's token
    assert session.state.encoder.transformer.static and session.state.decoder.static

    def addresses() -> dict[str, int]:
        s = session
        return tensor_addresses(s.state, [s.window, s._overlap, s.tokens_out, s.steps, s.prompt, s.delays, s.prev, s._audio_in])

    before = addresses()
    for b in range(3):
        session.start(b, DELAYS[b])
        session.push(b, WAVES[b][:6000])
    while session.ready():
        session.step()
    session.start(1, 4)  # a restart between replays
    session.push(1, WAVES[1][:3000])
    while session.ready():
        session.step()
    assert addresses() == before
    session.close()


# ----------------------------------------------------------------------------- the bookkeeping (CPU)


@pytest.mark.parametrize("sliding_window", [6, None])
def test_graph_generator_bookkeeping_gives_the_eager_tokens(rerun: type[RerunCapture], sliding_window: int | None) -> None:
    model = lm_model(sliding_window).float()
    eager = Generator(model, prefill_chunk=3)
    gen = Generator(model, prefill_chunk=3, graphs=True)
    assert gen.generate(PROMPTS, NEW_TOKENS) == eager.generate(PROMPTS, NEW_TOKENS)  # batch 4, four lengths
    assert gen.generate(PROMPTS, NEW_TOKENS) == eager.generate(PROMPTS, NEW_TOKENS)  # the kept graph, reset
    for p in PROMPTS:  # batch 1: with the window the ring (8 slots) is the same size for every prompt
        assert gen.generate([p], NEW_TOKENS) == eager.generate([p], NEW_TOKENS)
    assert list(gen.stream(PROMPTS[:2], 5)) == list(eager.stream(PROMPTS[:2], 5))


def test_a_kept_graph_is_recorded_again_when_the_weights_move_or_the_kernels_flip(
    rerun: type[RerunCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph reads the weights where they were when it was recorded and runs the kernels it
    recorded: a moved weight or a flipped VOXKIT_KERNELS makes the next run record again."""
    model = lm_model(6).float()
    gen = Generator(model, prefill_chunk=3, graphs=True)
    first = gen.generate(PROMPTS, NEW_TOKENS)
    gen.generate(PROMPTS, NEW_TOKENS)
    recorded = len(rerun.made)
    assert recorded and gen.generate(PROMPTS, NEW_TOKENS) == first and len(rerun.made) == recorded  # kept
    with torch.no_grad():
        model.layers[0].attention.wq.weight = torch.nn.Parameter(model.layers[0].attention.wq.weight.clone())  # same values, moved
    assert gen.generate(PROMPTS, NEW_TOKENS) == first
    assert len(rerun.made) > recorded
    recorded = len(rerun.made)
    monkeypatch.setenv("VOXKIT_KERNELS", "auto")  # the fixture turned them off
    assert gen.generate(PROMPTS, NEW_TOKENS) == first
    assert len(rerun.made) > recorded


def test_graph_generator_bookkeeping_with_a_delay(rerun: type[RerunCapture]) -> None:
    model = delay_decoder()
    prompts = [[1, 32, 32, 40], [1, 32]]
    for delay in (2.0, 6.0):
        eager = Generator(model, prefill_chunk=3, num_delay_tokens=delay).generate(prompts, NEW_TOKENS)
        assert Generator(model, prefill_chunk=3, graphs=True, num_delay_tokens=delay).generate(prompts, NEW_TOKENS) == eager


LAYOUTS = {
    **{name: args for name, args in lm_cache_tests.VARIANTS.items() if args.moe is None},
    "alibi-qk-norm-layer-scale": lm_cache_tests.tiny(
        sliding_window=5, positions="alibi", rope_theta=None, qk_norm=True, layer_scale=0.1
    ),
    "whisper-style": lm_cache_tests.tiny(
        sliding_window=None, max_seq_len=64, positions="sinusoidal", rope_theta=None, norm="layer", mlp="gelu", use_biases=True
    ),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_steps_without_host_sync(rerun: type[RerunCapture], name: str) -> None:
    """The stack's other layouts (windows per layer, YaRN and Llama-4 query scaling, Ada-RMSNorm
    with biases, ALiBi, QK-norm, LayerScale, absolute positions, LayerNorm, GELU MLP) record too."""
    args = LAYOUTS[name]
    model = lm_cache_tests._model(args)
    delay = 3.0 if args.ada_rms_norm_t_cond else None
    eager = Generator(model, prefill_chunk=3, num_delay_tokens=delay).generate(PROMPTS, 12)
    assert Generator(model, prefill_chunk=3, graphs=True, num_delay_tokens=delay).generate(PROMPTS, 12) == eager
    assert rerun.made and rerun.found == []


@pytest.mark.parametrize(("streams", "chunk_steps"), [(1, 1), (4, 1), (4, 7)])
def test_graph_session_bookkeeping_gives_the_eager_tokens(rerun: type[RerunCapture], streams: int, chunk_steps: int) -> None:
    model = asr_helpers.tiny_model()
    waves, delays = WAVES[:streams], DELAYS[:streams]
    eager = session_tokens(model, waves, delays, chunk_steps=chunk_steps)
    assert session_tokens(model, waves, delays, graphs=True, chunk_steps=chunk_steps) == eager
    assert len({t for out in eager for t in out}) > 2  # the random model emits varied tokens


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("sliding_window", [6, None])
def test_replayed_decode_graph_gives_the_eager_tokens(sliding_window: int | None) -> None:
    model = lm_model(sliding_window).float().cuda()
    eager = Generator(model, prefill_chunk=3)
    gen = Generator(model, prefill_chunk=3, graphs=True)
    expected = eager.generate(PROMPTS, NEW_TOKENS)
    assert gen.generate(PROMPTS, NEW_TOKENS) == expected  # batch 4, prompts of four lengths
    assert gen.generate(PROMPTS, NEW_TOKENS) == expected  # replaying the kept graph after a reset
    for p in PROMPTS:  # batch 1
        assert gen.generate([p], NEW_TOKENS) == eager.generate([p], NEW_TOKENS)


@pytest.mark.cuda
@needs_cuda
def test_replayed_decode_graph_with_a_delay_gives_the_eager_tokens() -> None:
    model = delay_decoder().cuda()
    prompts = [[1, 32, 32, 40], [1, 32], [1, 32, 32, 32, 32, 7], [1]]
    for delay in (2.0, 6.0):
        eager = Generator(model, prefill_chunk=3, num_delay_tokens=delay)
        gen = Generator(model, prefill_chunk=3, graphs=True, num_delay_tokens=delay)
        assert gen.generate(prompts, NEW_TOKENS) == eager.generate(prompts, NEW_TOKENS)
        assert gen.generate(prompts[:1], NEW_TOKENS) == eager.generate(prompts[:1], NEW_TOKENS)


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_replayed_compiled_decode_graph_gives_the_eager_tokens() -> None:
    torch._dynamo.reset()
    model = lm_model(6).float().cuda()
    expected = Generator(model, prefill_chunk=3).generate(PROMPTS, NEW_TOKENS)
    assert Generator(model, prefill_chunk=3, compile=True, graphs=True).generate(PROMPTS, NEW_TOKENS) == expected


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize(("streams", "chunk_steps"), [(1, 1), (4, 1), (4, 7)])
def test_replayed_session_graphs_give_the_eager_tokens(streams: int, chunk_steps: int) -> None:
    model = asr_helpers.tiny_model().cuda()
    waves, delays = [w.cuda() for w in WAVES[:streams]], DELAYS[:streams]
    eager = session_tokens(model, waves, delays, chunk_steps=chunk_steps, device="cuda")
    assert session_tokens(model, waves, delays, graphs=True, chunk_steps=chunk_steps, device="cuda") == eager


@pytest.mark.cuda
@needs_cuda
def test_replayed_session_graphs_follow_a_restarted_stream() -> None:
    """A restart changes one stream's delay between replays: the graph computes the delay gains
    from the session's delay buffer in every replay, so the restarted stream sees its new delay."""
    model = asr_helpers.tiny_model().cuda()
    out = {}
    for use_graphs in (False, True):
        session = StreamingSession(model, TOK, 2, device="cuda", graphs=use_graphs)
        session.start(0, 3)
        session.push(0, WAVES[0].cuda())
        session.finish(0)
        session.start(1, 3)
        session.push(1, WAVES[2].cuda())
        for _ in range(5):
            session.step()
        session.start(1, 5)
        session.push(1, WAVES[1].cuda())
        session.finish(1)
        tokens: list[list[int]] = []
        while session.active:
            session.step()
            tokens.append(session.prev.tolist())
        session.close()
        out[use_graphs] = tokens
    assert out[True] == out[False]
