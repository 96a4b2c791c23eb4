"""The trainer's collectives under gloo: the values they return, and that the group has let go of
their tensors when they return (a worker thread still releasing one while the process exited
aborted the process at exit, after a clean run or a clean error)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ports import free_port
from voxkit.train.collective import all_reduce_, gather_objects, rank0_object, run_and_settle

CALLS = 500  # plain dist.all_reduce left its tensor held after it returned in 1 call of 5; its Python reference alone in 1 of 300




def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    cpu = torch.device("cpu")
    held_after = 0
    sums = []
    for i in range(CALLS):
        t = torch.full((3,), float(rank + i))
        base = sys.getrefcount(t)
        all_reduce_(t)
        # checked at once, no wait between the return and the look: neither the C++ reference nor
        # the Python one the worker drops after it is left
        held_after += t._use_count() > 1 or sys.getrefcount(t) > base
        sums.append(t[0].item())
    gathered_held = 0
    for i in range(CALLS // 4):
        size = torch.tensor([rank + i])
        sizes = [torch.zeros_like(size) for _ in range(2)]
        run_and_settle([size, *sizes], lambda: dist.all_gather(sizes, size))  # noqa: B023 (called at once)
        gathered_held += any(x._use_count() > 1 for x in [size, *sizes])
    raised_held = 0
    for i in range(CALLS // 4):
        t = torch.full((3,), float(i))
        with contextlib.suppress(ZeroDivisionError):
            run_and_settle([t], lambda: (dist.all_reduce(t, async_op=True), 1 / 0))  # noqa: B023 (called at once)
        raised_held += t._use_count() > 1
    grad = torch.nn.Linear(2, 2).weight
    grad.grad = torch.ones(2, 2)
    g = grad.grad
    baseline = g._use_count()  # the parameter holds its gradient too
    all_reduce_(g)
    grad_held = g._use_count() - baseline
    gathered = gather_objects({"rank": rank, "pad": "x" * (100 * rank)}, cpu)  # unequal sizes
    told = rank0_object(("from", rank, torch.arange(rank + 2)), cpu)
    dist.barrier()
    dist.destroy_process_group()
    Path(out_dir, f"{rank}.json").write_text(json.dumps({
        "held_after": held_after, "gathered_held": gathered_held, "raised_held": raised_held,
        "sums": sums, "grad": g.tolist(), "grad_held": grad_held,
        "gathered": gathered, "told": [told[0], told[1], told[2].tolist()]}))


def test_collectives_give_their_values_and_return_only_once_gloo_let_go_of_the_tensors(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    out = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    for o in out:
        assert o["held_after"] == 0
        assert o["gathered_held"] == 0
        assert o["raised_held"] == 0  # a collective that raises (here: after starting one) waits too
        assert o["grad_held"] == 0
        assert o["sums"] == [float(2 * i + 1) for i in range(CALLS)]
        assert o["grad"] == [[2.0, 2.0], [2.0, 2.0]]
        assert o["gathered"] == [{"rank": 0, "pad": ""}, {"rank": 1, "pad": "x" * 100}]
        assert o["told"] == ["from", 0, [0, 1]]
