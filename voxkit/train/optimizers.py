"""The optimizers of a run and their learning-rate schedule, built from what the tasks declare.

Decisions, and why:

- **AdamW** with float32 state (fused on CUDA). Weight decay applies to matrices (``ndim >= 2``)
  only; biases, norm gains (1-D) and embedding tables (including an output head tied to them) are
  not decayed, because shrinking them towards zero only fights the normalisation and rare-token
  rows. A task's parameter group that sets ``weight_decay`` itself keeps its value.
- **Several optimizers**: a task may name optimizers and parameter groups (see
  :mod:`voxkit.train.task`); every parameter no task names goes to ``"main"``. A parameter two
  tasks share (one backbone) may be named by both only with the same settings: two optimizers
  stepping one tensor would each apply its own moments to it.
- **Schedule**: linear warmup over ``warmup_steps`` then cosine/linear decay to
  ``min_lr_ratio * lr`` at ``max_steps``, or constant. Each group's rate is
  ``optim.lr * lr_factor(step) * lr_scale``, set from the step number before every step: the
  schedule has no state of its own, so a resumed run only needs its step (and a time budget that
  moves ``max_steps`` moves the schedule with it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from voxkit.errors import VoxkitError
from voxkit.train.recipe import OptimConfig
from voxkit.train.task import MAIN, Task


def lr_factor(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Multiplier of ``optim.lr`` for optimizer step ``step`` (0-based)."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
    low = optim.min_lr_ratio
    if optim.schedule == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1 - (1 - low) * progress  # linear


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every group of ``optimizer`` the scheduled rate ``lr`` times its ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def build_optimizer(model: nn.Module, optim: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """One AdamW over every trainable parameter of ``model``, decayed as the module doc says."""
    return _adamw(_decay_split(model, [p for p in model.parameters() if p.requires_grad], {}, optim, keep_empty=True), optim, device)


def build_optimizers(model: nn.Module, tasks: Mapping[str, Task], optim: OptimConfig, device: torch.device) -> dict[str, torch.optim.AdamW]:
    """The run's optimizers by name: those the tasks declare, and ``"main"`` for every other parameter.

    Without declarations this is ``{"main": build_optimizer(...)}``, group for group.
    """
    in_model = {id(p) for p in model.parameters()}
    owner: dict[int, tuple[str, dict[str, Any], str]] = {}  # parameter -> (optimizer, group options, task)
    declared: dict[str, list[dict[str, Any]]] = {}
    for task_name in sorted(tasks):
        hook = getattr(tasks[task_name], "optimizers", None)
        if not callable(hook):
            continue
        for opt_name, groups in hook(model).items():
            for group in groups:
                options = {k: v for k, v in group.items() if k != "params"}
                params = []
                for p in _as_list(group["params"]):
                    if id(p) not in in_model:
                        raise VoxkitError(f"task {task_name!r}: optimizer {opt_name!r} names a parameter that is not part of the model")
                    if id(p) in owner:
                        other_opt, other_options, other_task = owner[id(p)]
                        if (other_opt, other_options) != (opt_name, options):
                            raise VoxkitError(f"a parameter is claimed by task {other_task!r} (optimizer {other_opt!r}, {other_options}) "
                                              f"and by task {task_name!r} (optimizer {opt_name!r}, {options}): one optimizer, one setting")
                        continue  # the same claim by two tasks sharing a module
                    owner[id(p)] = (opt_name, options, task_name)
                    if p.requires_grad:
                        params.append(p)
                if params:
                    declared.setdefault(opt_name, []).extend(_decay_split(model, params, options, optim))
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in owner]
    if rest:
        declared.setdefault(MAIN, []).extend(_decay_split(model, rest, {}, optim, keep_empty=MAIN not in declared))
    if not declared:
        raise VoxkitError("the model has no trainable parameters")
    return {name: _adamw(groups, optim, device) for name, groups in declared.items()}


def _as_list(params: Any) -> list[nn.Parameter]:
    if isinstance(params, torch.Tensor):
        return [params]  # type: ignore[list-item]
    return list(params if isinstance(params, Iterable) else [params])


def _decay_split(
    model: nn.Module, params: list[nn.Parameter], options: Mapping[str, Any], optim: OptimConfig, keep_empty: bool = False
) -> list[dict[str, Any]]:
    """``params`` as AdamW groups: as given when ``options`` sets weight_decay, else matrices decayed and the rest not."""
    base = {"lr_scale": 1.0, **options}
    if "weight_decay" in options:
        return [{**base, "params": params}]
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in params if p.ndim >= 2 and id(p) not in embeddings]
    no_decay = [p for p in params if not (p.ndim >= 2 and id(p) not in embeddings)]
    groups = [{**base, "params": decay, "weight_decay": optim.weight_decay}, {**base, "params": no_decay, "weight_decay": 0.0}]
    return groups if keep_empty else [g for g in groups if g["params"]]


def _adamw(groups: list[dict[str, Any]], optim: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, fused=fused)  # type: ignore[arg-type]
