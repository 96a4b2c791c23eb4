"""Fixed-capacity ring KV cache shared by every attention layer of a stack.

Why a ring: streams (live transcription, long chats) run for longer than any buffer, and sliding
window attention only ever needs the last ``window`` keys. Slot ``pos % capacity`` holds position
``pos``; nothing is ever concatenated or reallocated once the state exists.

Worked example (capacity 4, window 3, one stream): after positions 0..5 are written the slots hold
``slot_pos = [4, 5, 2, 3]``. Query position 5 may attend to positions 3, 4, 5 (``5 - p < 3``),
i.e. slots 3, 0, 1; slot 2 (position 2) is still there but masked out. Writing position 6 next
overwrites slot 2. A chunk of T new tokens is written BEFORE attending, so the oldest position the
chunk's first query needs (``p0 - window + 1``) must survive the chunk's own writes: hence
``capacity >= window + T - 1``, which :class:`RingIndex` enforces by splitting larger chunks.

Each stream has its own position counter, so batched streams may hold prompts of different
lengths and be reset one by one (``slot_pos = -1`` marks an empty slot).
"""

from __future__ import annotations

import dataclasses

import torch

from voxkit.streaming import StreamingState


@dataclasses.dataclass
class KVState(StreamingState):
    """One layer's keys and values. Stale entries are masked by ``slot_pos``, never cleared."""

    k: torch.Tensor  # [B, Hkv, C, hd]
    v: torch.Tensor  # [B, Hkv, C, hd]

    def reset(self, mask: torch.Tensor | None = None) -> None:
        pass  # emptiness lives in RingState.slot_pos; zero-filled values are never read


@dataclasses.dataclass
class RingState(StreamingState):
    """The streaming state of one stack: positions shared by all layers, and each layer's cache."""

    offset: torch.Tensor  # [B] long: next absolute position of each stream
    slot_pos: torch.Tensor = dataclasses.field(metadata={"reset": -1})  # [B, C] long, -1 = empty
    kv: list[KVState] = dataclasses.field(default_factory=list)  # one per layer
    # Static shapes: every step reads the whole ring (no host sync to find the written part), as a
    # compiled decode step (torch.compile) and a GPU want; results are the same either way.
    static: bool = False
    # The stack's Ada-RMSNorm factors for the delays they were computed for (Transformer.delay_gains):
    # (delays [B], dtype, one [B, 1, D] per layer). Lives only as long as this streaming session.
    gains: tuple[torch.Tensor, torch.dtype, list] | None = None
    # The fused CPU step's block descriptions and scratch buffer (lm/fused_step.py), made once per
    # session; a dict, so that resetting streams leaves it alone.
    fused: dict[str, object] = dataclasses.field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return self.slot_pos.shape[1]


@dataclasses.dataclass
class StepPlan:
    """What one streaming call writes and may read, computed once and shared by every layer."""

    positions: torch.Tensor  # [B, T] absolute positions of the new tokens
    slots: torch.Tensor  # [B, T] ring slots they are written to
    slot_pos: torch.Tensor  # [B, C] the ring itself (not a copy): build masks before commit_step
    used: int  # attention reads slots [0, used) only: no stream has written beyond them yet
    _masks: dict[int | None, torch.Tensor] = dataclasses.field(default_factory=dict)

    def mask(self, window: int | None) -> torch.Tensor:
        """[B, 1, T, used] bool, True where a new token may attend (built on first use per window:
        the fused CPU step reads ``slot_pos`` directly and never needs it)."""
        mask = self._masks.get(window)
        if mask is None:
            key_pos = self.slot_pos[:, None, None, : self.used]  # [B, 1, 1, used]
            query_pos = self.positions[:, None, :, None]  # [B, 1, T, 1]
            mask = (key_pos >= 0) & (key_pos <= query_pos)  # [B, 1, T, used]
            if window is not None:
                mask = mask & (query_pos - key_pos < window)
            self._masks[window] = mask
        return mask


def new_ring_state(
    batch_size: int, capacity: int, device: torch.device, kv: list[KVState] | None = None, static: bool = False
) -> RingState:
    return RingState(
        offset=torch.zeros(batch_size, dtype=torch.long, device=device),
        slot_pos=torch.full((batch_size, capacity), -1, dtype=torch.long, device=device),
        kv=kv or [],
        static=static,
    )


def new_kv_state(
    batch_size: int, n_kv_heads: int, capacity: int, head_dim: int, dtype: torch.dtype, device: torch.device
) -> KVState:
    shape = (batch_size, n_kv_heads, capacity, head_dim)
    return KVState(k=torch.zeros(shape, dtype=dtype, device=device), v=torch.zeros(shape, dtype=dtype, device=device))


def plan_step(ring: RingState, num_tokens: int) -> StepPlan:
    """Register ``num_tokens`` new positions per stream (the masks follow from the plan on demand).

    The slots are marked as holding the new positions before attention (a token attends to
    itself); :func:`commit_step` advances the offsets afterwards.
    """
    capacity = ring.slot_pos.shape[1]
    steps = torch.arange(num_tokens, device=ring.offset.device)  # [T]
    positions = ring.offset[:, None] + steps  # [B, T]
    slots = positions % capacity  # [B, T]
    ring.slot_pos.scatter_(1, slots, positions)
    used = capacity
    if ring.offset.device.type == "cpu" and not ring.static:
        # Until a stream wraps around the ring, the slots past its newest position were never
        # written (a restarted stream's old slots are marked empty): leave them out of the
        # attention instead of reading and masking them. A young stream (a file shorter than
        # the window, the usual case) then reads a fraction of the cache, which on a CPU is
        # bound by memory traffic. On a GPU the full cache is read: this needs a host sync.
        used = min(capacity, int(ring.offset.max()) + num_tokens)
    return StepPlan(positions=positions, slots=slots, slot_pos=ring.slot_pos, used=used)


def commit_step(ring: RingState, plan: StepPlan, lengths: torch.Tensor | None) -> None:
    """Advance each stream by its number of real tokens; forget slots written by padding."""
    num_tokens = plan.positions.shape[1]
    if lengths is None:
        ring.offset += num_tokens
        return
    padded = torch.arange(num_tokens, device=lengths.device)[None, :] >= lengths[:, None]  # [B, T]
    ring.slot_pos.scatter_(1, plan.slots, torch.where(padded, -1, plan.positions))
    ring.offset += lengths


def write_kv(state: KVState, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Store k, v [B, Hkv, T, hd] at ring slots [B, T]."""
    index = slots[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])  # [B, Hkv, T, hd]
    state.k.scatter_(2, index, k)
    state.v.scatter_(2, index, v)
