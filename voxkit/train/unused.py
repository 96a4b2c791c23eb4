"""The first step's check, under DDP without ``find_unused_parameters``, that the loss reaches every
trainable parameter in every micro-batch; a parameter it misses stops the run with one line.

Why every micro-batch, and not the gradient left at the end of the step: gradients accumulate over
a step's micro-batches, so a gradient at the end only says that *some* micro-batch reached the
parameter. DDP reduces on the step's last micro-batch (the others run under ``no_sync``) and waits
there for every parameter of a bucket. A parameter that an earlier micro-batch reached but the last
one did not leaves its bucket unreduced: the ranks step on different gradients and the next step
dies with a long error on every rank, as it does for a parameter that no micro-batch reaches. One
that only some micro-batches reach depends on the batch, so the first step whose last micro-batch
misses it fails the same way, possibly hours later. Both need ``find_unused_parameters``; the check
names them at step 1, before any update.

Why the first step runs every micro-batch under ``no_sync`` and averages the gradients itself
afterwards: ranks read different data, so the last micro-batch of one rank may reach a parameter
that another rank's does not. DDP would then start a bucket's all-reduce on one rank only, and the
check's own collectives would meet it on the other: a collective mismatch (under gloo, every
process aborts) instead of the line. With nothing reduced before the check, every rank reaches the check's
collectives in step and the line can name what any rank missed.

Cost: a hook and a counter per trainable parameter, and one all-reduce per parameter in place of
DDP's buckets, during the first step only; later steps run exactly as without the check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from voxkit.errors import VoxkitError
from voxkit.train.collective import all_reduce_, gather_objects


class GradientReach:
    """Counts, per trainable parameter, the backward passes that reached it until :meth:`close`.

    A backward pass reaches a parameter when autograd accumulates a gradient into it (its
    post-accumulate-grad hook runs once per pass), which is what DDP's reducer waits for.
    """

    def __init__(self, model: nn.Module) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.counts = [0] * len(named)  # per parameter: the passes that reached it
        self._handles = [p.register_post_accumulate_grad_hook(functools.partial(self._reached, i)) for i, (_, p) in enumerate(named)]

    def _reached(self, index: int, param: torch.Tensor) -> None:
        self.counts[index] += 1

    def close(self) -> None:
        """Remove the hooks: the steps after the first pay nothing."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def missed(self, passes: int) -> tuple[list[str], list[str]]:
        """(parameters no pass reached, parameters only some of ``passes`` reached), by name."""
        none = [name for name, n in zip(self.names, self.counts, strict=True) if n == 0]
        some = [name for name, n in zip(self.names, self.counts, strict=True) if 0 < n < passes]
        return none, some


def _listed(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def stop_unless_every_pass_reached_all(reach: GradientReach, passes: int, step: int, any_rank: Callable[[bool], bool],
                                       device: torch.device) -> None:
    """Raise one line naming the parameters that some backward pass of ``step`` missed on any rank.

    Collective under DDP: every rank calls it at the same point, and every rank raises the same
    error (the names are gathered from all ranks, so the line is the same whichever rank found them).
    """
    none, some = reach.missed(passes)
    if not any_rank(bool(none or some)):
        return
    if dist.is_initialized() and dist.get_world_size() > 1:
        found = gather_objects((none, some), device)  # the device the group's backend serves
        # none: no pass on any rank reached it; some: reached somewhere, missed somewhere else
        nowhere = set.intersection(*(set(rank_none) for rank_none, _ in found))
        missed = {name for rank_none, rank_some in found for name in rank_none + rank_some}
        none = [name for name in reach.names if name in nowhere]
        some = [name for name in reach.names if name in missed - nowhere]
    parts = []
    if none:
        parts.append(f"{len(none)} received none ({_listed(none)})")
    if some:
        parts.append(f"{len(some)} received one from only some micro-batches ({_listed(some)})")  # of a process, or of the processes
    err = VoxkitError(f"under DDP every trainable parameter must get a gradient from every micro-batch, but {'; '.join(parts)} "
                      f"at step {step}: set train.find_unused_parameters = true, or freeze what the loss does not use")
    err.every_rank = True  # type: ignore[attr-defined]  # the ranks agreed on it: one of them says it
    raise err


def average_gradients(params: list[torch.Tensor]) -> None:
    """Average ``params``' gradients over the ranks in place, as DDP does (divide by the world size, then sum).

    For the first step only, which ran every micro-batch under ``no_sync`` (see the module doc):
    one all-reduce per parameter, no buffer the size of the model.
    """
    world_size = dist.get_world_size()
    for p in params:
        if p.grad is not None:  # the check has passed: every trainable parameter has one
            all_reduce_(p.grad.div_(world_size))
