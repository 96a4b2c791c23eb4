"""DDP with gradient accumulation and a head that only some micro-batches reach (an auxiliary loss on
the batches that carry its labels): the first step stops with one line on every rank, whichever
micro-batch of the step and whichever rank reaches the head. Before, a head reached by the first
micro-batch only got an update on unreduced gradients and a long error at step 2, one reached by
the last micro-batch trained on (until a step whose last micro-batch missed it), and one reached by
one rank's last micro-batch only aborted both processes with a collective mismatch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ports import free_port
from test_user_distributed import StridedLM, WithIdleHead, _join, _params, make_recipe
from voxkit.train.checkpointing import latest_checkpoint
from voxkit.train.trainer import Trainer


class HeadOnSomeBatches(StridedLM):
    """StridedLM whose every other batch on the ``ranks`` also trains ``idle_head``: the
    ``labelled``-th of each pair (0: the first micro-batch of a step with grad_accum 2, 1: the last)."""

    def __init__(self, labelled: int, ranks: tuple[int, ...] = (0, 1)) -> None:
        super().__init__()
        self.labelled, self.ranks = labelled, ranks

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[tuple[torch.Tensor, bool]]:
        for j, batch in enumerate(super().train_batches(epoch, rank, world_size)):
            yield batch, j % 2 == self.labelled and rank in self.ranks

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, bool]) -> tuple[torch.Tensor, dict[str, float]]:
        tokens, labelled = batch
        loss, metrics = super().loss(model, tokens)
        if labelled:
            head = model.module.idle_head if isinstance(model, nn.parallel.DistributedDataParallel) else model.idle_head
            loss = loss + 0.01 * head(torch.ones(16)).square().mean()
        return loss, metrics


CASES = {  # name: (which micro-batch of a pair is labelled, on which ranks, find_unused_parameters)
    "first": (0, (0, 1), False),
    "last": (1, (0, 1), False),
    "rank 1's last": (1, (1,), False),
    "fixed": (0, (0, 1), True),
}


def _worker(rank: int, world_size: int, ports: list[int], out_dir: str) -> None:
    outcomes: dict[str, Any] = {}
    for port, (case, (labelled, ranks, find_unused)) in zip(ports, CASES.items(), strict=True):
        _join(rank, world_size, port)
        model = WithIdleHead()
        before = _params(model)
        recipe = make_recipe(Path(out_dir) / case, max_steps=3, grad_accum=2, find_unused_parameters=find_unused)
        outcome: dict[str, Any] = {}
        try:
            Trainer(recipe, model, {"strided": HeadOnSomeBatches(labelled, ranks)}, {"strided": 1.0}).fit()
        except Exception as err:  # the test reads what each rank raised
            outcome["error"] = f"{type(err).__name__}: {err}"
        outcome["unchanged"] = all(torch.equal(before[k], v) for k, v in _params(model).items())
        outcome["group_left"] = not dist.is_initialized()
        outcomes[case] = outcome
    torch.save(outcomes, Path(out_dir) / f"rank{rank}.pt")


def test_a_head_some_micro_batches_reach_stops_ddp_with_one_line_before_any_update(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, [free_port() for _ in CASES], str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        outcomes = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for case in ("first", "last", "rank 1's last"):
            outcome = outcomes[case]
            error = outcome.get("error", "")
            assert error.startswith("VoxkitError: ") and "\n" not in error, (case, error)
            assert "'idle_head.weight', 'idle_head.bias'" in error and "only some micro-batches" in error, error
            assert "train.find_unused_parameters = true" in error and "step 1" in error, error
            assert outcome["unchanged"] and outcome["group_left"], (case, outcome)
            assert latest_checkpoint(tmp_path / case) is None
        assert "error" not in outcomes["fixed"] and not outcomes["fixed"]["unchanged"]
    assert latest_checkpoint(tmp_path / "fixed").name == "step_00000003"
