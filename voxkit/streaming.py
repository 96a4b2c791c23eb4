"""Streaming state for stateful modules (the moshi pattern).

A module that must remember something between calls in streaming mode (a KV cache, the tail of a
causal convolution, a stream's position) subclasses :class:`StreamingModule` and returns a typed
:class:`StreamingState` dataclass from ``_init_streaming_state``. The same ``forward`` then serves
training (no state: the whole sequence at once) and streaming (state present: one chunk at a time).

``with model.streaming(batch_size):`` creates every sub-module's state, preallocated, and drops it
on exit. ``model.reset_streaming(mask)`` restarts the streams selected by a boolean ``[B]`` mask
without touching the others, so batched sessions can start and stop independently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@dataclasses.dataclass
class StreamingState:
    """Base class of per-module streaming state.

    Every tensor field has the batch as its first dimension. On reset, a field is filled with the
    value given by its ``metadata={"reset": value}`` (0 when absent) for the selected streams.
    Fields that need another policy override :meth:`reset`.
    """

    def reset(self, mask: torch.Tensor) -> None:
        """Restart the streams where ``mask`` ([B] bool) is true."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                m = mask.to(value.device).view(-1, *([1] * (value.dim() - 1)))  # [B, 1, ...]
                value.masked_fill_(m, f.metadata.get("reset", 0))


class StreamingModule(nn.Module):
    """An ``nn.Module`` that can hold streaming state between calls."""

    def __init__(self) -> None:
        super().__init__()
        self._streaming_state: StreamingState | None = None

    def _init_streaming_state(self, batch_size: int) -> StreamingState | None:
        """Allocate this module's state for ``batch_size`` streams (None if it keeps none)."""
        return None

    @property
    def is_streaming(self) -> bool:
        return self._streaming_active

    _streaming_active: bool = False

    def _streaming_modules(self) -> Iterator[StreamingModule]:
        for m in self.modules():
            if isinstance(m, StreamingModule):
                yield m

    def start_streaming(self, batch_size: int) -> None:
        """Enter streaming mode without a context manager (for long-lived sessions)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for m in self._streaming_modules():
            m._streaming_state = m._init_streaming_state(batch_size)
            m._streaming_active = True

    def stop_streaming(self) -> None:
        for m in self._streaming_modules():
            m._streaming_state = None
            m._streaming_active = False

    @contextmanager
    def streaming(self, batch_size: int) -> Iterator[StreamingModule]:
        """Stream ``batch_size`` sequences through the module inside the ``with`` block."""
        if self.is_streaming:
            raise RuntimeError("module is already streaming")
        self.start_streaming(batch_size)
        try:
            yield self
        finally:
            self.stop_streaming()

    def reset_streaming(self, mask: torch.Tensor | None = None) -> None:
        """Restart the selected streams ([B] bool mask; all streams when None)."""
        for m in self._streaming_modules():
            state = m._streaming_state
            if state is None:
                continue
            if mask is None:
                first = next((v for v in vars(state).values() if isinstance(v, torch.Tensor)), None)
                if first is None:
                    continue
                full = torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
                state.reset(full)
            else:
                state.reset(mask)
