"""What the trainer needs from a task, and how it draws batches from a weighted mixture of tasks.

The trainer knows nothing about speech, text or audio tokens: a task owns its data (one epoch of
batches per rank), its loss and its held-out metrics. That keeps one trainer for the streaming
recogniser today and the text/ASR/TTS/chat mixture later, all on one backbone instance: every task
of a recipe is built against the same model object, so a parameter two tasks use receives the
gradients of both.

The mixture decides, for every micro-batch, which task supplies it. Every rank draws the same task
sequence from the same seeded generator, so in DDP all ranks run the same task (the same sub-graph
of the shared model) at the same micro-step; only the batches differ, because each task shards its
data by ``rank``/``world_size``.

Two optional hooks let a task train more than one loss with more than one optimizer (a codec's
generator and discriminator) or give parts of the model their own learning rate (a pretrained
encoder fine-tuned at a tenth of the rate); a task without them is trained with one AdamW over
every parameter on :meth:`Task.loss`:

- ``optimizers(model) -> dict[str, list[dict]]``: named optimizers, each a list of torch parameter
  groups. A group may set ``lr_scale`` (multiplies ``optim.lr`` and its schedule; default 1) and
  any AdamW option (``weight_decay``, ``betas``, ``eps``); without ``weight_decay`` it gets the
  trainer's split (matrices decayed, biases, norms and embeddings not). Every parameter no group
  names belongs to the optimizer ``"main"``. A parameter belongs to one optimizer only.
- ``updates() -> list[Update]``: what one optimizer step of this task does, in order. Default:
  ``[Update("main", self.loss)]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

MAIN = "main"  # the optimizer of every parameter no task assigns to another one

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Mapping[str, Any]]]


@runtime_checkable
class Task(Protocol):
    """A training objective with its own data.

    ``train_batches`` should be deterministic in ``(epoch, rank, world_size)`` (shuffle with a
    generator seeded from the epoch, not from the global RNG): resume replays the current epoch up
    to the saved position, so a deterministic iterator makes resume exact. It should also give
    each rank its share (1 / world_size) of the epoch: a resume with another number of processes
    rescales the saved position by that share (:meth:`TaskMixture.load_state_dict`).
    """

    name: str

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[Any]:
        """One epoch of batches for this rank, on the CPU; the trainer moves them with :func:`move_to`."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss (mean over the batch's target tokens) and metrics to log.

        Metric values may be floats or 0-d tensors; tensors are averaged on the device and only
        synchronised at log steps, which avoids a host sync per micro-batch. A task with an
        ``updates()`` hook is trained on its updates' losses; this one is then what tools that time
        one step of the task run.
        """
        ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Held-out metrics (may be empty); called on rank 0 only, under ``torch.no_grad``."""
        ...


@dataclasses.dataclass(frozen=True)
class Update:
    """One loss minimised by one optimizer, at the steps its schedule names.

    At each optimizer step the trainer runs the active updates of the drawn tasks grouped by
    optimizer, optimizers in the order the tasks' updates first name them (tasks sorted by name):
    each optimizer accumulates the gradients of its updates over the step's micro-batches (starting
    from zero, so an earlier update's gradients never leak into it), is clipped and stepped, and
    every gradient is cleared. A GAN lists the discriminator's update first, so the generator's
    update sees the discriminator after its step.

    ``every`` and ``start`` schedule it: it runs at the 0-based optimizer steps ``start``,
    ``start + every``, ... (``every=2`` with ``start`` 0 and 1 alternates two updates).

    Under DDP ``loss`` receives the DistributedDataParallel wrapper, which averages gradients over
    ranks only for what runs through its forward: an update that must train on every rank's data
    selects its part of the model through forward arguments, not by calling submodules.
    """

    optimizer: str
    loss: LossFn
    every: int = 1
    start: int = 0

    def __post_init__(self) -> None:
        if self.every < 1 or self.start < 0:
            raise ValueError(f"Update needs every >= 1 and start >= 0, got every={self.every}, start={self.start}")

    def active(self, step: int) -> bool:
        return step >= self.start and (step - self.start) % self.every == 0


def prefix_lr_groups(model: torch.nn.Module, lr_scale: Mapping[str, float], where: str) -> dict[str, list[dict[str, Any]]]:
    """An ``optimizers()`` hook's answer for per-prefix learning rates: each prefix of ``lr_scale``
    becomes a parameter group of the main optimizer with its ``lr_scale`` (the longest prefix wins).

    Why a shared helper: fine-tuning a pretrained part slower than a fresh one is what most tasks
    need, and a prefix that names nothing must fail loudly (a typo would silently train at full rate).
    """
    if not lr_scale:
        return {}
    inner = getattr(model, "module", model)
    groups: dict[str, list[torch.nn.Parameter]] = {}
    named: set[str] = set()  # prefixes that name parameters, trainable or frozen (a frozen part is no typo)
    for name, param in inner.named_parameters():
        match = max((p for p in lr_scale if name.startswith(p)), key=len, default=None)
        if match is not None:
            named.add(match)
            if param.requires_grad:  # a frozen part stays out of every optimizer
                groups.setdefault(match, []).append(param)
    unused = sorted(set(lr_scale) - named)
    if unused:
        from voxkit.errors import VoxkitError

        raise VoxkitError(f"{where}: no parameter name starts with {', '.join(map(repr, unused))}")
    return {MAIN: [{"params": params, "lr_scale": float(lr_scale[p])} for p, params in groups.items()]}


def task_updates(task: Task) -> list[Update]:
    """The task's updates: its ``updates()`` hook, else its :meth:`Task.loss` on the main optimizer."""
    hook = getattr(task, "updates", None)
    updates = list(hook()) if callable(hook) else [Update(MAIN, task.loss)]
    seen = [u.optimizer for u in updates]
    if not updates or len(set(seen)) != len(seen):
        raise ValueError(f"task {task.name!r}: updates() must name each of its optimizers once, got {seen}")
    return updates


def move_to(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor inside dicts, lists, tuples (and named tuples) to ``device``.

    Non-blocking copies are safe here: the consumer runs on the same CUDA stream.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # named tuple
        return type(obj)(*(move_to(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj


class TaskMixture:
    """Picks the task of each micro-batch by weight and keeps each task's epoch position.

    State (for checkpoints) is tensors and ints only: the generator state, and per task the epoch
    and the number of batches already taken from it. Restoring replays the epoch's iterator up to
    that position, so the batches after resume are the ones an uninterrupted run would have seen
    whenever ``train_batches`` is deterministic.
    """

    def __init__(self, tasks: Mapping[str, Task], weights: Mapping[str, float], seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not tasks:
            raise ValueError("the task mixture is empty")
        if set(tasks) != set(weights):
            raise ValueError(f"tasks {sorted(tasks)} and weights {sorted(weights)} name different tasks")
        self.names = sorted(tasks)  # sorted: the draw must not depend on dict insertion order
        w = torch.tensor([float(weights[n]) for n in self.names], dtype=torch.float64)
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"task weights must be finite, >= 0 and not all zero, got {dict(weights)}")
        self.probs = w / w.sum()
        self.tasks = dict(tasks)
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = {n: 0 for n in self.names}
        self.consumed = {n: 0 for n in self.names}
        self._iters: dict[str, Iterator[Any]] = {}

    def draw(self, count: int) -> list[str]:
        """Task names for the next ``count`` micro-batches (same on every rank)."""
        idx = torch.multinomial(self.probs, count, replacement=True, generator=self.generator)
        return [self.names[i] for i in idx.tolist()]

    def next_batch(self, name: str) -> Any:
        """The next batch of task ``name``, starting its next epoch when the current one ends."""
        for _ in range(2):
            it = self._iters.get(name)
            if it is None:
                it = self._iters[name] = iter(self.tasks[name].train_batches(self.epoch[name], self.rank, self.world_size))
            try:
                batch = next(it)
            except StopIteration:
                del self._iters[name]
                if self.consumed[name] == 0:
                    break  # a fresh epoch produced nothing
                self.epoch[name] += 1
                self.consumed[name] = 0
                continue
            self.consumed[name] += 1
            return batch
        raise RuntimeError(f"task {name!r} yields no batches for rank {self.rank} of {self.world_size} (epoch {self.epoch[name]})")

    def close(self) -> None:
        """End every task's running epoch now (a DataLoader's worker processes exit with it).

        Without this the workers of the last epoch live on until interpreter shutdown, where a
        dozen of them with a pin-memory thread can keep a finished training process from exiting.
        """
        for it in self._iters.values():
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self._iters.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "epoch": dict(self.epoch),
            "consumed": dict(self.consumed),
        }

    def load_state_dict(self, state: Mapping[str, Any], saved_world_size: int | None = None) -> None:
        """Restore the draw generator and fast-forward every task to its saved epoch position.

        ``saved_world_size``: the number of processes that wrote ``state``. Positions count this
        rank's batches, and a rank's share of an epoch shrinks as processes are added, so a run
        resumed with another number of processes keeps the fraction of each epoch already seen
        (rounded down: a batch may come twice, none is skipped) rather than the batch count, which
        would skip half the epoch's rest going from 1 process to 2 and repeat half its start going back.
        """
        scale = (saved_world_size or self.world_size, self.world_size)
        self.generator.set_state(state["generator"])
        self._iters.clear()
        for name in self.names:
            self.epoch[name] = int(state["epoch"].get(name, 0))
            target = int(state["consumed"].get(name, 0)) * scale[0] // scale[1]
            self.consumed[name] = 0
            if target == 0:
                continue
            it = self._iters[name] = iter(self.tasks[name].train_batches(self.epoch[name], self.rank, self.world_size))
            for _ in range(target):
                next(it, None)
            self.consumed[name] = target
