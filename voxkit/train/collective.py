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

The wait is for tensors in CPU memory, which only gloo serves: its worker threads are the ones
seen to abort a process. NCCL's work objects keep their tensors until its watchdog thread collects
them, so a wait there would last until the timeout on every call. The objects are pickled into
tensors the trainer owns, so that it can see when they are released.
"""

from __future__ import annotations

import pickle
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

SETTLE_TIMEOUT_S = 5.0  # a reference taken during the collective by someone else never goes: stop waiting then


def _counts(tensors: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Per tensor: C++ references, then Python references (both are dropped by a releasing worker)."""
    return [(tensors[i]._use_count(), sys.getrefcount(tensors[i])) for i in range(len(tensors))]


def run_and_settle(tensors: list[torch.Tensor], collective: Callable[[], Any], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Run ``collective`` on ``tensors``, then wait, with the interpreter's lock released, until the
    group holds none of them, also when it raises.

    Both counts are watched: a worker lowers the C++ count first, then waits for the lock to drop
    its reference to the Python object; only when both are back where they were is it done.
    """
    before = _counts(tensors)
    try:
        collective()
    except BaseException as err:
        traceback.clear_frames(err.__traceback__)  # its frames hold the tensors too: the counts must not see them
        raise
    finally:
        deadline = time.monotonic() + timeout_s
        while _held(tensors, before) and time.monotonic() < deadline:
            time.sleep(0)  # releases the lock: the worker finishes its release


def _held(tensors: list[torch.Tensor], before: list[tuple[int, int]]) -> bool:
    now = _counts(tensors)
    return any(t.device.type == "cpu" and (n[0] > b[0] or n[1] > b[1]) for t, n, b in zip(tensors, now, before, strict=True))


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
