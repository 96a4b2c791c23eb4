"""Autoregressive generation on the backbone, kept apart from the model (moshi's LMGen pattern).

:class:`Generator` owns nothing but a reference to a :class:`~voxkit.lm.transformer.Transformer`
and a sampling recipe; it drives the model's own streaming forward. A batch of prompts of
different lengths is right-padded and prefilled in one call with per-stream ``lengths`` (padding is
neither cached nor counted), so every stream continues at its own position. Decoding then moves all
streams in lock-step, one token each per step; a stream that hit a stop id keeps stepping (the batch
shape never changes) but its outputs are masked out.

The decode loop never concatenates, never loops over streams in Python and, in :meth:`generate`,
only synchronises with the device every ``sync_every`` steps to check whether all streams are done.
On a GPU the step itself can be one compiled graph (``compile``), one replayed CUDA graph
(``graphs``, :mod:`voxkit.lm.graphs`) or both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from voxkit.errors import OptionError
from voxkit.lm.cache import RingState
from voxkit.lm.sampling import SamplingConfig, row_generators, sample_next
from voxkit.lm.transformer import DEFAULT_PREFILL_CHUNK, Transformer

if TYPE_CHECKING:
    from voxkit.lm.graphs import DecodeGraph

PAD_ID = 0  # value of the right padding of the prompt batch; never cached, never attended to


@dataclasses.dataclass
class _Step:
    """One decode step, still on the device."""

    index: int
    tokens: torch.Tensor  # [B] long: the sampled token of every stream (garbage for dead streams)
    emitted: torch.Tensor  # [B] bool: the token is real output (stream alive and not a stop id)
    alive: torch.Tensor  # [B] bool: the stream may still emit after this step


@contextlib.contextmanager
def _memory_for(what: str) -> Iterator[None]:
    """An allocation that does not fit (a huge max_new_tokens on a full-attention model sizes the
    KV cache to it) is one clear error instead of the allocator's message from deep inside."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(err):
            raise OptionError(f"{what} would not fit in memory: lower max_new_tokens (or the batch)") from None
        raise


class Generator:
    """Generates continuations of token prompts with a :class:`Transformer` decoder.

    stop_ids end a stream; the stop token itself is not part of the output. prefill_chunk bounds
    how many prompt tokens go through the model at once; with a sliding window it also sets the
    ring capacity (``window + prefill_chunk - 1``), so it trades prefill speed against cache memory.
    ``compile`` runs each decode step as one ``torch.compile(fullgraph=True)`` graph over caches of
    fixed shape (worth it on a GPU, where per-operator launches dominate a step). ``graphs`` (CUDA
    only) records the decode step, compiled or not, as a CUDA graph and replays it for every token,
    so a step costs one launch (:mod:`voxkit.lm.graphs`). The caches and the recorded step are kept
    for the next run of the same batch size and cache capacity (the same longest prompt and
    ``max_new_tokens``; with a sliding window, any run long enough to fill the ring), so that only
    the first run pays for the capture. A delay-conditioned decoder (the recogniser's) generates
    under the delay ``num_delay_tokens``.
    """

    def __init__(
        self,
        model: Transformer,
        sampling: SamplingConfig | None = None,
        *,
        stop_ids: Sequence[int] = (),
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        sync_every: int = 16,
        compile: bool = False,
        graphs: bool = False,
        num_delay_tokens: float | None = None,
    ) -> None:
        if model.tok_embeddings is None:
            raise ValueError("generation needs a text decoder (vocab_size > 0)")
        if prefill_chunk < 1 or sync_every < 1:
            raise ValueError("prefill_chunk and sync_every must be >= 1")
        self.model = model
        self.sampling = sampling or SamplingConfig()
        self.stop_ids = tuple(int(i) for i in stop_ids)
        self.prefill_chunk = prefill_chunk
        self.sync_every = sync_every
        self.compile = compile
        if model.args.ada_rms_norm_t_cond and num_delay_tokens is None:
            raise ValueError("this decoder is delay-conditioned (Ada-RMSNorm): pass num_delay_tokens")
        self.num_delay_tokens = num_delay_tokens
        self._decode: Callable[..., torch.Tensor] = functools.partial(decode_step, model)
        if compile:
            # Compiled once per generator; the prompt's prefill stays eager (its length varies).
            self._decode = torch.compile(self._decode, fullgraph=True, dynamic=False)
        self.graphs = graphs
        self._graph: DecodeGraph | None = None  # the last run's recorded step and caches (graphs only)
        if graphs:
            from voxkit.lm import graphs as cuda_graphs

            cuda_graphs.check_capturable(model)
            cuda_graphs.check_device(model.activation_weight.device)

    # ----------------------------------------------------------------------------- public API

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        seed: int | Sequence[int] | None = None,
        prompt_embeddings: torch.Tensor | None = None,
        limits: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """Continuations of every prompt, at most ``max_new_tokens`` each, stop ids excluded.

        ``prompt_embeddings`` [B, Tmax, D] (the prompts right-padded to the longest) replaces the
        token embeddings of the prompts: how a multimodal model puts audio vectors at its
        placeholders. Generated tokens are embedded by the model as usual.

        ``limits`` [B] caps each stream on its own (each at most ``max_new_tokens``): a stream
        stops at its cap as at a stop id. Why: a stream's room is its own (the model's context
        less its prompt), and a short prompt batched beside a long one must get the reply it gets
        alone, not one cut to the long prompt's room.

        ``seed`` seeds a generator of each stream's own, all with the same seed, or each with its
        own of a list of one seed per prompt: a prompt samples the same continuation alone or in
        any batch, as a seeded request does in vLLM (without a seed, the streams share torch's
        default generator).
        """
        self._check(prompts, max_new_tokens, limits)  # before the buffers: -1 or 10^10 tokens must not reach torch.zeros
        device = self.model.norm.weight.device
        B = len(prompts)
        with _memory_for(f"{B} x {max_new_tokens} output tokens"):
            out = torch.zeros(B, max_new_tokens, dtype=torch.long, device=device)  # [B, N] preallocated
            emitted = torch.zeros(B, max_new_tokens, dtype=torch.bool, device=device)  # [B, N]
        for step in self._steps(prompts, max_new_tokens, seed, prompt_embeddings, limits):
            out[:, step.index] = step.tokens
            emitted[:, step.index] = step.emitted
            if (step.index + 1) % self.sync_every == 0 and not bool(step.alive.any()):
                break
        # A stream emits a prefix of the steps (alive only ever turns off), so its count is its length.
        counts = emitted.sum(dim=1).tolist()  # one sync for the whole batch
        rows = out.tolist()
        return [row[:n] for row, n in zip(rows, counts, strict=True)]

    def stream(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        seed: int | None = None,
        prompt_embeddings: torch.Tensor | None = None,
        limits: Sequence[int] | None = None,
    ) -> Iterator[list[int | None]]:
        """Yield, per decode step, the new token of every stream (None where a stream emitted none).

        Ends when every stream has stopped or after ``max_new_tokens`` steps (``limits``: as in
        :meth:`generate`). Yielding tokens to the host synchronises every step, which streaming
        output needs anyway.
        """
        for step in self._steps(prompts, max_new_tokens, seed, prompt_embeddings, limits):
            tokens = torch.where(step.emitted, step.tokens, -1).tolist()  # one sync per step
            yield [t if t >= 0 else None for t in tokens]
            if all(t < 0 for t in tokens):
                return

    # ----------------------------------------------------------------------------- internals

    def capacity_for(self, max_prompt_len: int, max_new_tokens: int) -> int:
        """Ring capacity for a run: everything fits, or a sliding window plus one prefill chunk.

        Off the CPU the ring also holds a window plus the first prefill chunk: a ring smaller
        than that is written one token at a time (a step cannot tell, without a host sync, that
        a fresh ring has room), which would make a GPU prefill one call per prompt token.
        """
        needed = max_prompt_len + max_new_tokens
        window = self.model.args.max_window
        if window is None:
            return needed  # full attention must keep every position
        largest = window + self.prefill_chunk - 1
        if self.model.activation_weight.device.type != "cpu":
            needed = max(needed, window + min(max_prompt_len, self.prefill_chunk) - 1)
        return min(needed, largest)

    def _check(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, limits: Sequence[int] | None = None) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise OptionError(f"max_new_tokens must be a whole number, got {max_new_tokens!r}")
        if not prompts:
            raise OptionError("no prompts given")
        if any(len(p) == 0 for p in prompts):
            raise OptionError("every prompt needs at least one token")
        if max_new_tokens < 1:
            raise OptionError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        vocab = self.model.args.vocab_size
        if any(not 0 <= t < vocab for p in prompts for t in p):
            raise OptionError(f"prompt token ids must be in [0, {vocab})")
        if limits is not None:
            if len(limits) != len(prompts):
                raise OptionError(f"limits gives {len(limits)} caps for {len(prompts)} prompts")
            if any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_new_tokens for n in limits):
                raise OptionError(f"limits must be whole numbers in [1, max_new_tokens={max_new_tokens}], got {list(limits)}")

    def _padded_batch(self, prompts: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad the prompts: tokens [B, Tmax] and lengths [B], built on the host, moved once."""
        lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long)  # [B]
        tokens = torch.full((len(prompts), int(lengths.max())), PAD_ID, dtype=torch.long)  # [B, Tmax]
        for b, p in enumerate(prompts):  # prompt setup only, not the decode loop
            tokens[b, : len(p)] = torch.tensor(p, dtype=torch.long)
        return tokens.to(device), lengths.to(device)

    def _steps(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        seed: int | Sequence[int] | None,
        prompt_embeddings: torch.Tensor | None = None,
        limits: Sequence[int] | None = None,
    ) -> Iterator[_Step]:
        """The decode loop shared by :meth:`generate` and :meth:`stream` (no host sync inside)."""
        self._check(prompts, max_new_tokens, limits)
        model = self.model
        device = model.norm.weight.device
        tokens, lengths = self._padded_batch(prompts, device)
        if prompt_embeddings is not None and tuple(prompt_embeddings.shape[:2]) != tuple(tokens.shape):
            raise ValueError(f"prompt_embeddings {list(prompt_embeddings.shape)} do not match the padded prompts {list(tokens.shape)}")
        B = tokens.shape[0]
        # a generator per stream, seeded with ``seed`` (or its own of a list): a stream samples what it samples alone
        generators = None if seed is None else row_generators(seed, B, device)
        stop = torch.tensor(self.stop_ids, dtype=torch.long, device=device)  # [S]
        caps = None if limits is None else torch.tensor(list(limits), dtype=torch.long, device=device)  # [B]
        rows = torch.arange(B, device=device)  # [B]
        delays = None
        if self.num_delay_tokens is not None:
            delays = torch.full((B,), float(self.num_delay_tokens), device=device)  # [B]

        capacity = self.capacity_for(tokens.shape[1], max_new_tokens)
        # The caches belong to this run: the model itself is never written to, so other streams
        # (a live transcription, another generation) can use it at the same time.
        with _memory_for(f"the KV cache of {B} x {capacity} positions"), self._decoder(B, capacity, delays) as (state, decode):
            # Grad mode is switched off per model call, not around the loop: a generator's context
            # would otherwise leak into the caller's code between steps.
            with torch.inference_mode():
                x = model.embed(tokens) if prompt_embeddings is None else prompt_embeddings.to(device)  # [B, Tmax, D]
                hidden = model.forward_embeddings(x, state=state, lengths=lengths, num_delay_tokens=delays)  # [B, Tmax, D]
                # Only each stream's last real position needs the (large) output projection.
                logits = model.logits(hidden[rows, lengths - 1][:, None])[:, 0]  # [B, V]
            alive = torch.ones(B, dtype=torch.bool, device=device)  # [B]
            for index in range(max_new_tokens):
                # sampled before the next step: a CUDA graph's logits are overwritten by its next replay
                next_tokens = sample_next(logits, self.sampling, generators)  # [B]
                emitted = alive & ~torch.isin(next_tokens, stop) if self.stop_ids else alive  # [B]
                if caps is not None:
                    emitted = emitted & (caps > index)  # [B] a stream's own cap ends it like a stop id
                alive = emitted
                yield _Step(index=index, tokens=next_tokens, emitted=emitted, alive=alive)
                if index + 1 < max_new_tokens:
                    with torch.inference_mode():
                        logits = decode(next_tokens)  # [B, V]

    @contextlib.contextmanager
    def _decoder(
        self, batch_size: int, capacity: int, delays: torch.Tensor | None
    ) -> Iterator[tuple[RingState, Callable[[torch.Tensor], torch.Tensor]]]:
        """A run's caches and its decode step ``tokens [B] -> logits [B, V]``: fresh caches for the
        eager or compiled step; with ``graphs``, a recorded step bound to caches kept between runs."""
        if not self.graphs:
            with self.model.streaming(batch_size, capacity=capacity, static=self.compile) as state:
                yield state, lambda tokens: self._decode(tokens, state, delays)
            return
        from voxkit.lm.graphs import DecodeGraph, recorded_with

        graph = self._graph
        # A new capture for a new shape, while the kept one still streams (an unfinished
        # stream()), or once the model's weights moved or the kernel switch flipped.
        if (
            graph is None
            or graph.batch_size != batch_size
            or graph.state.capacity != capacity
            or graph.state.entered
            or graph.recorded_with != recorded_with(self.model)
        ):
            self._graph = graph = None  # the old graph's memory goes before the new capture
            state = self.model.init_state(batch_size, capacity=capacity, static=True)
            graph = DecodeGraph(self.model, state, num_delay_tokens=delays, step=self._decode)
            self._graph = graph
        else:
            graph.reset(delays)
        with graph.state:
            yield graph.state, graph.step


def decode_step(
    model: Transformer, tokens: torch.Tensor, state: RingState, num_delay_tokens: torch.Tensor | None = None
) -> torch.Tensor:
    """One new token per stream: tokens [B] -> next-token logits [B, V], caches updated in ``state``.

    Static shapes whatever the position when ``state.static`` is set, which is what lets
    ``torch.compile(fullgraph=True)`` turn the whole step into one graph (gpt-fast style).
    """
    return model(tokens[:, None], state=state, num_delay_tokens=num_delay_tokens)[:, 0]
