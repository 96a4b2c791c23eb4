"""Streaming state that belongs to whoever streams, not to the model.

A loaded model is shared and read-only: one :class:`~voxkit.asr.model.RealtimeRecognizer` serves
any number of live sessions, file transcriptions and text generations at once. So nothing a
stream must remember between calls (a KV cache, the tail of a causal convolution, a stream's
position) is stored on the modules. A stateful module subclasses :class:`StreamingModule` and
builds a typed :class:`StreamingState` dataclass in :meth:`StreamingModule.init_state`; the caller
keeps that object and passes it to every forward call (``state=``). The same forward serves
training (no state: the whole sequence at once) and streaming (a state: one chunk at a time).

Caches are sized when the state is made (``init_state(batch_size, capacity=...)``), never by
writing attributes into the modules. ``with model.streaming(B) as state:`` is the short form for a
state used inside one block. A state is entered by one user at a time: entering it twice raises,
so two sessions can never write into the same caches by mistake. ``state.reset(mask)`` restarts
the streams selected by a boolean ``[B]`` mask without touching the others, so batched sessions
start and stop independently.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass
class StreamingState:
    """Base class of per-module streaming state.

    Every tensor field has the batch as its first dimension. On reset, a tensor field is filled
    with the value given by its ``metadata={"reset": value}`` (0 when absent) for the selected
    streams; nested states (fields that are states or lists of states) are reset too. Fields that
    need another policy override :meth:`reset`.
    """

    def __post_init__(self) -> None:
        self._entered = False

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Restart the streams where ``mask`` ([B] bool) is true (all streams when None)."""
        if mask is None:
            mask = torch.ones(self.batch_size, dtype=torch.bool)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                m = mask.to(value.device).view(-1, *([1] * (value.dim() - 1)))  # [B, 1, ...]
                value.masked_fill_(m, f.metadata.get("reset", 0))
            for child in _children(value):
                child.reset(mask)

    @property
    def batch_size(self) -> int:
        """Number of streams (the first dimension of the first tensor found)."""
        for value in vars(self).values():
            if isinstance(value, torch.Tensor):
                return value.shape[0]
            for child in _children(value):
                return child.batch_size
        raise ValueError(f"{type(self).__name__} holds no tensor")

    # ----------------------------------------------------------------------------- ownership

    @property
    def entered(self) -> bool:
        return self._entered

    def enter(self) -> StreamingState:
        """Claim the state for one streaming user (a session); a second claim raises."""
        if self._entered:
            raise RuntimeError(f"this {type(self).__name__} is already streaming: make a new state for another stream")
        self._entered = True
        return self

    def exit(self) -> None:
        self._entered = False

    def __enter__(self) -> StreamingState:
        return self.enter()

    def __exit__(self, *exc: object) -> None:
        self.exit()


def _children(value: Any) -> list[StreamingState]:
    if isinstance(value, StreamingState):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, StreamingState)]
    return []


class StreamingModule(nn.Module, abc.ABC):
    """An ``nn.Module`` whose forward can continue streams described by a state it builds."""

    @abc.abstractmethod
    def init_state(self, batch_size: int, **options: Any) -> StreamingState:
        """A fresh state for ``batch_size`` streams, preallocated (options size the caches)."""

    @contextmanager
    def streaming(self, batch_size: int, **options: Any) -> Iterator[Any]:
        """``with model.streaming(B, capacity=...) as state:`` a fresh state, entered for the block."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        with self.init_state(batch_size, **options) as state:
            yield state
