"""The trainer's collectives, each returning only once the process group has let go of its tensors.

Why: gloo runs a collective on a worker thread, and ``wait`` returns when the result is there, not
when the worker has dropped its references to the tensors. Dropping a reference to a tensor that
Python sees takes the interpreter's lock. If the process exits in between (an error every rank
raised at the same collective, or the end of a run), the worker asks for the lock while the
interpreter shuts down, and the C++ runtime aborts the process: SIGABRT after a clean run, which a
launcher reports as a crashed rank. Destroying the process group does not help, because it outlives
``destroy_process_group`` (torch keeps references to the default group once its compiler stack is
imported), so its threads are never joined. Each collective here therefore waits, releasing the
lock, until the group holds none of its tensors: no worker touches Python after the trainer's
last collective returns.

Only gloo is waited on: it is the backend whose worker threads were seen to abort a process; the
objects are pickled into tensors the trainer owns, so that it can see when they are released.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

SETTLE_TIMEOUT_S = 5.0  # a tensor someone else also holds never settles: stop waiting for it then


def run_and_settle(tensors: list[torch.Tensor], collective: Callable[[], Any], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Run ``collective`` on ``tensors``, then wait, with the interpreter's lock released, until the
    group holds none of them (each tensor's use count back where it was before)."""
    before = [t._use_count() for t in tensors]
    collective()
    if not dist.is_initialized() or dist.get_backend() != "gloo":
        return
    deadline = time.monotonic() + timeout_s
    for t, n in zip(tensors, before, strict=True):
        while t._use_count() > n and time.monotonic() < deadline:
            time.sleep(0)  # releases the lock: the worker finishes its release


def all_reduce_(tensor: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
    """``dist.all_reduce`` in place, returning once the group has released ``tensor``."""
    run_and_settle([tensor], lambda: dist.all_reduce(tensor, op=op))
    return tensor


def _to_bytes_tensor(obj: Any, device: torch.device) -> torch.Tensor:
    data = pickle.dumps(obj)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)  # [n bytes]


def gather_objects(obj: Any, device: torch.device) -> list[Any]:
    """Every rank's ``obj``, in rank order (``dist.all_gather_object`` with tensors the caller owns)."""
    world_size = dist.get_world_size()
    payload = _to_bytes_tensor(obj, device)  # [n]
    size = torch.tensor([payload.numel()], dtype=torch.long, device=device)  # [1]
    sizes = [torch.zeros_like(size) for _ in range(world_size)]  # world_size x [1]
    run_and_settle([size, *sizes], lambda: dist.all_gather(sizes, size))
    lengths = [int(s.item()) for s in sizes]
    padded = torch.zeros(max(lengths), dtype=torch.uint8, device=device)  # [max n]
    padded[: payload.numel()] = payload
    del payload
    slots = [torch.empty_like(padded) for _ in range(world_size)]  # world_size x [max n]
    run_and_settle([padded, *slots], lambda: dist.all_gather(slots, padded))
    return [pickle.loads(slot[:n].cpu().numpy().tobytes()) for slot, n in zip(slots, lengths, strict=True)]


def rank0_object(obj: Any, device: torch.device) -> Any:
    """Rank 0's ``obj`` on every rank (``dist.broadcast_object_list`` with tensors the caller owns)."""
    payload = _to_bytes_tensor(obj, device) if dist.get_rank() == 0 else torch.zeros(0, dtype=torch.uint8, device=device)  # [n]
    size = torch.tensor([payload.numel()], dtype=torch.long, device=device)  # [1]
    run_and_settle([size], lambda: dist.broadcast(size, src=0))
    buffer = payload if dist.get_rank() == 0 else torch.empty(int(size.item()), dtype=torch.uint8, device=device)  # [n]
    del payload
    run_and_settle([buffer], lambda: dist.broadcast(buffer, src=0))
    return pickle.loads(buffer.cpu().numpy().tobytes())
