"""The Mistral-style transformer shared by every voxkit model.

One class serves as a text decoder (``vocab_size > 0``: embeddings, final norm, output head), as
the body of an audio encoder (``vocab_size == 0``: embeddings come from outside), and as the
Voxtral Realtime decoder (Ada-RMSNorm delay conditioning). Offline calls see whole sequences;
given a state from :meth:`Transformer.init_state` the same forward consumes chunks and keeps them
in that state's ring KV cache. The state belongs to the caller, so one model serves any number of
streams at once (voxkit/streaming.py).
"""

from __future__ import annotations

import torch
from torch import nn

from voxkit.lm.args import TransformerArgs
from voxkit.lm.attention import AttentionInputs
from voxkit.lm.block import TransformerBlock
from voxkit.lm.cache import RingState, StepPlan, commit_step, new_ring_state, plan_step
from voxkit.lm.fused_step import fused_stack_step
from voxkit.lm.norm import delay_embedding, make_norm
from voxkit.lm.positions import ALiBi, SinusoidalPositions, position_mask
from voxkit.lm.rope import RotaryEmbedding, Rotation, llama4_query_scale
from voxkit.ops import linear16
from voxkit.ops.attention import takes_windows
from voxkit.streaming import StreamingModule

DEFAULT_PREFILL_CHUNK = 256


class Transformer(StreamingModule):
    def __init__(self, args: TransformerArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim) if args.vocab_size > 0 else None
        self.layers = nn.ModuleList(TransformerBlock(args, i) for i in range(args.n_layers))
        self.norm = make_norm(args, args.dim) if args.final_norm else nn.Identity()
        self.output = (
            nn.Linear(args.dim, args.vocab_size, bias=False) if args.vocab_size > 0 and not args.tied_embeddings else None
        )
        # Positions: exactly one of these is set, by args.positions ("none" sets none of them).
        self.rope = RotaryEmbedding(args) if args.positions == "rope" else None
        self.alibi = ALiBi(args.n_heads, 0 if args.alibi_slopes == "from_one" else 1) if args.positions == "alibi" else None
        self.abs_positions = SinusoidalPositions(args.max_seq_len, args.dim) if args.positions == "sinusoidal" else None
        self.windows: set[int | None] = {args.window_for_layer(i) for i in range(args.n_layers)}
        self.init_weights()

    def init_weights(self) -> None:
        """Initialisation for training from scratch (loading a checkpoint overwrites it).

        Token embeddings get std ``dim**-0.5`` so that tied logits of a normalised hidden state
        start near unit scale (torch's default N(0, 1) would start the loss near 10x log V), and
        the residual-branch outputs (wo, w2) are scaled down by ``sqrt(2 n_layers)`` as in GPT-2
        so the residual stream does not grow with depth.
        """
        if self.tok_embeddings is not None:
            nn.init.normal_(self.tok_embeddings.weight, std=self.args.dim**-0.5)
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=self.args.dim**-0.5)
        scale = (2 * self.args.n_layers) ** -0.5
        with torch.no_grad():
            for name, p in self.layers.named_parameters():
                if name.endswith(("attention.wo.weight", "w2.weight")):
                    p.mul_(scale)

    # ----------------------------------------------------------------------------- streaming

    def default_capacity(self) -> int:
        window = self.args.max_window
        if window is not None:
            return window + DEFAULT_PREFILL_CHUNK - 1
        if self.args.max_seq_len:
            return self.args.max_seq_len
        raise ValueError("full-attention model without max_seq_len: pass capacity= to init_state")

    def init_state(
        self, batch_size: int, *, capacity: int | None = None, dtype: torch.dtype | None = None, static: bool = False
    ) -> RingState:
        """Caches for ``batch_size`` streams: a ring of ``capacity`` positions per layer.

        capacity defaults to the window plus one prefill chunk (or max_seq_len for full attention);
        dtype to the activations' dtype (the norms'), whatever dtype the weights are stored in.
        ``static`` makes every step read the whole ring (fixed shapes for torch.compile; lm/cache.py).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        capacity = capacity or self.default_capacity()
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        ref = self.activation_weight
        dtype = dtype or ref.dtype
        kv = [layer.attention.init_cache(batch_size, capacity, dtype) for layer in self.layers]
        return new_ring_state(batch_size, capacity, ref.device, kv=kv, static=static)

    @property
    def activation_weight(self) -> torch.Tensor:
        """A norm weight: its dtype is the activations' (weights may be stored in 16 bits), its device the model's."""
        norm = self.norm if self.args.final_norm else self.layers[0].attention_norm
        return norm.weight  # type: ignore[return-value]

    def max_chunk(self, state: RingState) -> int:
        """Largest chunk one streaming call may write without evicting keys it still needs.

        Writing T tokens evicts the T oldest slots; the chunk's first query still needs the
        ``window - 1`` keys before it, so ``T <= capacity - window + 1`` (at least 1: a ring no
        larger than the window is stepped one token at a time once it has wrapped).
        """
        capacity = state.capacity
        window = self.args.max_window
        return capacity if window is None else max(1, capacity - window + 1)

    # ----------------------------------------------------------------------------- forward

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.tok_embeddings is None:
            raise ValueError("this transformer has no token embeddings (vocab_size == 0)")
        return self.tok_embeddings(tokens)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states [B, T, D] -> logits [B, T, V]."""
        if self.output is not None:
            return self.output(hidden)
        assert self.tok_embeddings is not None
        table = self.tok_embeddings.weight  # [V, D]
        if table.dtype != hidden.dtype:  # kept in 16-bit storage (voxkit.ops.stored_weights)
            out = linear16(hidden, table)  # the few rows of a streaming step on a CPU, else None
            if out is not None:
                return out
        # .to: a no-op unless the table is kept in 16 bits; the same product as the float32 model
        return hidden @ table.to(hidden.dtype).t()

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        state: RingState | None = None,
        lengths: torch.Tensor | None = None,
        num_delay_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V]. See :meth:`forward_embeddings` for the options."""
        hidden = self.forward_embeddings(self.embed(tokens), state=state, lengths=lengths, num_delay_tokens=num_delay_tokens)
        return self.logits(hidden)

    def forward_embeddings(
        self,
        x: torch.Tensor,
        *,
        state: RingState | None = None,
        lengths: torch.Tensor | None = None,
        num_delay_tokens: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the stack on input embeddings x [B, T, D]; returns final-norm hidden states [B, T, D].

        state: the caller's caches (:meth:`init_state`); without one, x is a whole sequence.
        lengths [B]: with a state, how many of the T inputs of each stream are real (the rest
        is right padding that is neither cached nor counted). num_delay_tokens [B]: the delay that
        conditions Ada-RMSNorm (required when the args enable it). positions [T]: offline only,
        absolute positions (default ``arange(T)``).
        """
        gains = self.delay_gains(num_delay_tokens, x, state)
        if state is None:
            return self._forward_offline(x, gains, positions)
        if not self.args.causal:
            raise ValueError("a bidirectional stack cannot stream: call it on whole sequences (state=None)")
        if len(state.kv) != len(self.layers) or state.offset.shape[0] != x.shape[0]:
            raise ValueError(
                f"state for {state.offset.shape[0]} streams of {len(state.kv)} layers, input of {x.shape[0]} streams "
                f"for {len(self.layers)} layers: make the state with this model's init_state"
            )
        T = x.shape[1]
        max_chunk = self.max_chunk(state)
        if max_chunk < T and state.offset.device.type == "cpu" and int(state.offset.max()) + T <= state.capacity:
            max_chunk = T  # a young ring: this chunk wraps nothing, so nothing it needs is evicted
        if max_chunk >= T:
            return self._forward_step(x, state, lengths, gains)
        # Larger than the ring allows at once: consume it in chunks (prefill only, never per step).
        outs = []
        for start in range(0, T, max_chunk):
            chunk = x[:, start : start + max_chunk]
            chunk_len = None if lengths is None else (lengths - start).clamp(0, chunk.shape[1])
            outs.append(self._forward_step(chunk, state, chunk_len, gains))
        return torch.cat(outs, dim=1)

    def delay_gains(
        self, num_delay_tokens: torch.Tensor | None, x: torch.Tensor, state: RingState | None = None
    ) -> list[torch.Tensor | None]:
        """Each layer's Ada-RMSNorm factor ``1 + g(delay)`` [B, 1, D] (all None without Ada-RMSNorm).

        The delay belongs to the stream, not to a step, so a streaming session without gradients
        computes the factors once and reuses them while the streams' delays stay the same.
        """
        if not self.args.ada_rms_norm_t_cond:
            return [None] * len(self.layers)
        if num_delay_tokens is None:
            raise ValueError("this model is delay-conditioned: pass num_delay_tokens")
        reuse = state is not None and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        # a step being recorded as a CUDA graph computes them inside the graph (torch.equal would sync)
        reuse = reuse and not (x.is_cuda and torch.cuda.is_current_stream_capturing())
        if reuse and state.gains is not None:
            delays, dtype, gains = state.gains
            if dtype == x.dtype and delays.shape == num_delay_tokens.shape and torch.equal(delays, num_delay_tokens):
                return gains
        t_cond = delay_embedding(num_delay_tokens.to(x.device), self.args.dim).to(x.dtype)  # [B, D]
        gains = [layer.ada_rms_norm_t_cond.scale(t_cond) for layer in self.layers]  # n_layers x [B, 1, D]
        if reuse:
            state.gains = (num_delay_tokens.clone(), x.dtype, gains)
        return gains

    def _rotary_inputs(self, positions: torch.Tensor) -> tuple[Rotation | None, torch.Tensor | None]:
        rotation = None if self.rope is None else self.rope.rotation(positions)
        q_scale = None
        if self.args.llama_4_scaling is not None:
            s = self.args.llama_4_scaling
            q_scale = llama4_query_scale(positions, s.beta, s.original_max_position_embeddings)
        return rotation, q_scale

    def _add_absolute_positions(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Whisper-style stacks add a sinusoidal table to their input; others use RoPE or ALiBi."""
        if self.abs_positions is None:
            return x
        return x + self.abs_positions(positions).to(x.dtype)  # [B, T, D] + [(B,) T, D]

    def _forward_offline(self, x: torch.Tensor, gains: list[torch.Tensor | None], positions: torch.Tensor | None) -> torch.Tensor:
        T = x.shape[1]
        default_positions = positions is None
        if positions is None:
            positions = torch.arange(T, device=x.device)
        x = self._add_absolute_positions(x, positions)
        rotation, q_scale = self._rotary_inputs(positions)
        masks: dict[int | None, torch.Tensor | None] = {}
        causal = self.args.causal
        # With default positions a window is a band over indices, which a backend registered for
        # this device computes from the number alone; elsewhere the band is built once, here.
        pass_windows = self.alibi is None and default_positions and takes_windows(x.device)
        for w in self.windows:
            if self.alibi is not None:
                masks[w] = self.alibi(positions, positions, causal=causal, window=w, dtype=x.dtype)  # [1, H, T, T]
            elif w is None or w >= T or pass_windows:
                masks[w] = None  # the built-in causal mask, none, or the window passed as a number
            else:
                masks[w] = position_mask(positions, positions, causal=causal, window=w)[0, 0]  # [T, T]
        op_windows = frozenset(w for w in self.windows if pass_windows and w is not None and w < T)
        inputs = AttentionInputs(rotation=rotation, q_scale=q_scale, masks=masks, plan=None, op_windows=op_windows)
        for layer, gain in zip(self.layers, gains, strict=True):
            x = layer(x, inputs, gain)
        return self.norm(x)

    def _step_masks(self, plan: StepPlan, dtype: torch.dtype) -> dict[int | None, torch.Tensor | None]:
        """ALiBi's float biases over the ring for this step; empty otherwise (the plan's bool masks serve)."""
        if self.alibi is None:
            return {}
        keys = plan.slot_pos[:, : plan.used]  # [B, used] positions in the ring, -1 = empty
        return {w: self.alibi(plan.positions, keys, causal=True, window=w, dtype=dtype) for w in self.windows}  # [B, H, T, used]

    def _forward_step(
        self, x: torch.Tensor, state: RingState, lengths: torch.Tensor | None, gains: list[torch.Tensor | None]
    ) -> torch.Tensor:
        plan = plan_step(state, x.shape[1])
        x = self._add_absolute_positions(x, plan.positions)
        rotation, q_scale = self._rotary_inputs(plan.positions)
        inputs = AttentionInputs(rotation=rotation, q_scale=q_scale, masks=self._step_masks(plan, x.dtype), plan=plan)
        fused = fused_stack_step(self, x, state, plan, inputs, gains)  # one C call per block (CPU), or None
        if fused is not None:
            x = fused
        else:
            for layer, gain, cache in zip(self.layers, gains, state.kv, strict=True):
                x = layer(x, inputs, gain, cache)
        commit_step(state, plan, lengths)
        return self.norm(x)
