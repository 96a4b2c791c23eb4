"""The one voxkit trainer: a weighted task mixture on one model, one process or many (torchrun).

Decisions, and why:

- **Distributed**: when ``torchrun`` set ``RANK``/``WORLD_SIZE`` (or a process group already
  exists), the model is wrapped in ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA). Only
  rank 0 writes logs and checkpoints and runs evaluation. A trainable parameter that some
  micro-batch of the first step does not reach stops the run before any update unless
  ``find_unused_parameters`` is on (:mod:`voxkit.train.unused`). Every rank draws the same task for each
  micro-batch (see :class:`~voxkit.train.task.TaskMixture`), so DDP always reduces the gradients
  of the same sub-graph; tasks shard their data by rank.
- **Precision**: parameters and optimizer state stay float32; on CUDA the forward runs under
  bf16 autocast (``train.amp = "bf16"``). CPU runs in float32, which keeps CPU tests exact, unless
  ``train.cpu_amp`` asks for bf16 autocast there too (faster on CPUs with bf16 instructions).
- **Optimizers and schedule**: AdamW, one by default, several when tasks declare them (a codec's
  generator and discriminator; per-module learning rates), each with its own updates and its own
  gradient clipping; see :mod:`voxkit.train.optimizers` and :class:`~voxkit.train.task.Update`.
- **Accumulation**: each micro-batch loss is divided by ``grad_accum``, so an optimizer step sees
  the mean over micro-batches (equal to one big batch when micro-batches hold equal token counts);
  DDP all-reduces only on an optimizer's last micro-batch (``no_sync``; a first step that checks
  for unreached parameters averages after all of them instead). Losses stay on the device and are
  synchronised only at log steps.
- **Resume** restores exactly: weights, every optimizer's AdamW moments, the step (which fixes
  the learning rate), every rank's torch / CUDA / Python / NumPy RNG state, the mixture's draw
  generator and each task's epoch and position (replayed by re-iterating the epoch). An
  interrupted run then continues bit-exactly on the same hardware when ``train_batches`` is
  deterministic per epoch. Not restored: state hidden inside a task's own objects (e.g. a
  DataLoader's worker RNG), and per-rank RNGs when the world size changed (those ranks are
  reseeded; each task's epoch position is rescaled to the new share of an epoch per rank). A
  resume with another number of processes or another ``grad_accum`` says what a step now averages.
- **Evaluation** runs under a forked RNG, so evaluating never changes the training trajectory.
- **SIGTERM** (a scheduler's or a deadline's) ends the run after the step in flight, with a
  checkpoint and without the final evaluation, and ``fit`` returns: :mod:`voxkit.train.stop`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from voxkit.errors import VoxkitError
from voxkit.train.checkpointing import latest_checkpoint, load_checkpoint, save_checkpoint
from voxkit.train.collective import all_reduce_, gather_objects, rank0_object
from voxkit.train.optimizers import build_optimizer as build_optimizer  # re-exported: the default optimizer
from voxkit.train.optimizers import build_optimizers, lr_factor, set_lr
from voxkit.train.recipe import Recipe, save_recipe
from voxkit.train.rng import rng_state, seed_everything, set_rng_state
from voxkit.train.scalars import SCALARS_FILE as SCALARS_FILE  # re-exported: where a run's curve is
from voxkit.train.scalars import Running, ScalarLog
from voxkit.train.stop import StopOnSignal
from voxkit.train.task import MAIN, Task, TaskMixture, Update, move_to, task_updates
from voxkit.train.time_budget import TimeBudget
from voxkit.train.unused import GradientReach, average_gradients, stop_unless_every_pass_reached_all

# ---------------------------------------------------------------------------- building blocks


def _diverged(scalars: Mapping[str, float]) -> str | None:
    """The first training loss or gradient norm that is NaN or infinite, as "key = value"; None if all are finite.

    Checked at log steps only (the values are on the host then): a NaN gradient makes every weight
    NaN at the next update, and a run that goes on spends its time (a lent GPU's minutes) on nothing.
    """
    for key, value in scalars.items():
        watched = key.startswith("train/") and (key.endswith("/loss") or key.startswith("train/grad_norm"))
        if watched and not math.isfinite(value):
            return f"{key} = {value}"
    return None


# ---------------------------------------------------------------------------- trainer


class Trainer:
    """Trains ``model`` on a weighted mixture of ``tasks`` as the recipe says; see the module doc."""

    def __init__(self, recipe: Recipe, model: nn.Module, tasks: Mapping[str, Task], weights: Mapping[str, float] | None = None) -> None:
        self.recipe = recipe
        self.model = model
        self.tasks = dict(tasks)
        self.weights = dict(weights) if weights is not None else {n: recipe.task_weights().get(n, 1.0) for n in self.tasks}
        self.step = 0
        self.rank, self.world_size, self.local_rank = 0, 1, 0
        self.device = torch.device("cpu")
        self.last_scalars: dict[str, float] = {}
        self.clock: Callable[[], float] = time.perf_counter  # for train.time_budget_s
        self.budget_used_s = 0.0  # of train.time_budget_s, by the runs this one resumes
        self._budget: TimeBudget | None = None
        self._check_gradients = False

    # ------------------------------------------------------------------ setup

    def _setup_distributed(self) -> bool:
        """Join torchrun's process group if there is one; returns whether this call created it."""
        created = False
        if not dist.is_initialized() and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            backend = "nccl" if self._wants_cuda() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group(backend=backend)
            created = True
        if dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return created

    def _wants_cuda(self) -> bool:
        name = self.recipe.train.device
        return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())

    def _select_device(self) -> torch.device:
        name = self.recipe.train.device
        if self._wants_cuda():
            if not torch.cuda.is_available():
                raise VoxkitError(f"train.device = {name!r} but CUDA is not available")
            index = int(name.split(":")[1]) if ":" in name else self.local_rank
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return torch.device("cpu")

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        cfg = self.recipe.train
        if cfg.amp == "bf16" and (self.device.type == "cuda" or cfg.cpu_amp):
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ main loop

    def fit(self, resume: bool = False, stop_at: int | None = None) -> dict[str, float]:
        """Train to ``train.max_steps`` (or stop early after step ``stop_at``, checkpointing there).

        ``stop_at`` is for time-limited jobs: the schedule still spans ``max_steps`` and a later
        ``fit(resume=True)`` continues as if never stopped. Returns the last logged scalars.
        """
        cfg = self.recipe.train
        created_group = self._setup_distributed()
        try:
            self.device = self._select_device()
            if cfg.num_threads > 0:
                torch.set_num_threads(cfg.num_threads)
            out_dir = Path(cfg.out_dir)
            checkpoint = latest_checkpoint(out_dir) if resume else None
            if not resume and latest_checkpoint(out_dir) is not None:
                raise VoxkitError(f"{out_dir} already holds checkpoints: resume with --resume, or choose another train.out_dir")
            if resume and checkpoint is None and self.rank == 0:  # a mistyped out_dir must not pass for a resume
                print(f"--resume: no checkpoint in {out_dir}: starting from step 0", file=sys.stderr, flush=True)
            seed_everything(cfg.seed + self.rank)
            self.model.to(self.device)
            self.model.train()
            self._build_optimizers()
            self.max_steps = cfg.max_steps  # lowered by train.time_budget_s once the step time is known
            self.mixture = TaskMixture(self.tasks, self.weights, seed=cfg.seed, rank=self.rank, world_size=self.world_size)
            self.step = 0
            if checkpoint is not None:
                self._restore(checkpoint)
            self.ddp_model: nn.Module = self.model
            if self.world_size > 1:
                ids = [self.device.index] if self.device.type == "cuda" else None
                # a mixture's tasks use different parts of the shared model (text LM: no audio encoder), and
                # each optimizer's updates only reach its own parameters
                unused = cfg.find_unused_parameters or len(self.tasks) > 1 or len(self.optimizers) > 1
                self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=unused)
                self._check_gradients = not unused  # at this process's first step: see voxkit.train.unused
            scalars = self._loop(out_dir, self.max_steps if stop_at is None else min(stop_at, self.max_steps), stop_at)
            if created_group and self.world_size > 1:
                # leave together: a rank tearing gloo down while its peer still sends can fail
                dist.barrier()
            return scalars
        finally:
            if created_group and dist.is_initialized():
                dist.destroy_process_group()

    def _loop(self, out_dir: Path, last_step: int, stop_at: int | None = None) -> dict[str, float]:
        cfg = self.recipe.train
        is_main = self.rank == 0
        log = None
        if is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_recipe(self.recipe, out_dir / "recipe.json")
            log = ScalarLog(out_dir, self.step)
        bar = None
        show_bar = is_main and cfg.progress and sys.stderr.isatty()
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=self.max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        running = Running()
        saved_at = self.step if self.step > 0 else -1  # a resumed run need not rewrite its checkpoint
        evaluated_at, logged_at = -1, self.step
        tick = time.perf_counter()
        budget = TimeBudget(cfg.time_budget_s, self.step, self.clock, used=self.budget_used_s)
        self._budget = budget
        stopped_by_budget = False
        stop = StopOnSignal().__enter__()  # left in the finally below
        try:
            while self.step < last_step:
                grad_norms = self._train_step(running)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                budget.observe(self.step)
                # time-based, so rank 0 alone decides and every rank receives the same answer: under DDP
                # at log steps (the answer costs a broadcast), alone at every step (slow CPU steps
                # would otherwise overrun the budget by up to log_every of them)
                if budget.active and (self.world_size == 1 or self.step == budget.calibrate_step or self.step % cfg.log_every == 0):
                    decision = (budget.plan(self.step, cfg.max_steps), budget.spent()) if is_main else None
                    planned, spent = self._agree(decision)
                    if planned is not None:
                        if planned != self.max_steps and is_main:
                            print(f"time budget {cfg.time_budget_s:.0f} s: schedule fitted to {planned} steps", file=sys.stderr, flush=True)
                        self.max_steps = planned
                        last_step = planned if stop_at is None else min(stop_at, planned)
                        if bar is not None:
                            bar.total = planned
                    if spent and self.step < last_step:
                        if is_main:
                            print(f"time budget spent at step {self.step}", file=sys.stderr, flush=True)
                        last_step = self.step
                        stopped_by_budget = True
                # one process checks every step; ranks agree at log steps, where any rank's SIGTERM stops them all
                # (a scheduler may signal every process, `kill PID` only one of them)
                if (self.world_size == 1 or self.step % cfg.log_every == 0) and self._any_rank(stop.requested):
                    if is_main:
                        print(f"SIGTERM: stopping at step {self.step} and saving a checkpoint", file=sys.stderr, flush=True)
                    last_step = self.step
                if self.step % cfg.log_every == 0 or self.step == last_step:
                    elapsed, tick = time.perf_counter() - tick, time.perf_counter()
                    scalars = self._scalars(running, grad_norms, elapsed / (self.step - logged_at))
                    logged_at = self.step
                    self.last_scalars.update(scalars)
                    if log is not None:
                        log.log(self.step, scalars)
                        loss = scalars.get("train/loss", float("nan"))  # nan: no update ran in the interval
                        if bar is not None:
                            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scalars['train/lr']:.2e}")
                        else:
                            line = f"step {self.step}/{self.max_steps} loss {loss:.4f} lr {scalars['train/lr']:.3e}"
                            print(line, file=sys.stderr, flush=True)
                    diverged = self._agree(_diverged(scalars) if is_main else None)
                    if diverged:  # the weights are NaN from here on: stop before a checkpoint keeps them
                        raise VoxkitError(f"training diverged at step {self.step} ({diverged}); the checkpoints before it are "
                                          "kept: lower optim.lr or raise optim.warmup_steps, then --resume")
                if cfg.save_every and self.step % cfg.save_every == 0:
                    self._save(out_dir)
                    saved_at = self.step
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._evaluate(log)
                    evaluated_at = self.step
            if saved_at != self.step:
                self._save(out_dir)
            if evaluated_at != self.step and (self.step == self.max_steps or stopped_by_budget) and not stop.requested:
                self._evaluate(log)
        finally:
            stop.__exit__(None, None, None)
            self.mixture.close()
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
        return dict(self.last_scalars)

    def _any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (one all-reduce under DDP; on the device nccl needs)."""
        if self.world_size == 1:
            return flag
        box = all_reduce_(torch.tensor([1.0 if flag else 0.0], device=self.device), op=dist.ReduceOp.MAX)
        return bool(box.item() > 0)

    def _agree(self, value: Any) -> Any:
        """Rank 0's value on every rank (a time-based decision must not differ between DDP ranks)."""
        if self.world_size == 1:
            return value
        return rank0_object(value, self.device)

    def _build_optimizers(self) -> None:
        """The optimizers the tasks declare (one AdamW by default), and the order they step in."""
        self.optimizers = build_optimizers(self.model, self.tasks, self.recipe.optim, self.device)
        self.updates: dict[str, list[Update]] = {name: task_updates(task) for name, task in self.tasks.items()}
        self.order: list[str] = []  # optimizers by first mention in the tasks' updates (tasks sorted by name)
        for name in sorted(self.tasks):
            for update in self.updates[name]:
                if update.optimizer not in self.optimizers:
                    raise VoxkitError(f"task {name!r} steps optimizer {update.optimizer!r}, which has no parameters "
                                      f"(optimizers: {', '.join(sorted(self.optimizers))})")
                if update.optimizer not in self.order:
                    self.order.append(update.optimizer)
        # clipped in the model's parameter order: the norm of a step then does not depend on how the groups are split
        members = {name: {id(p) for g in opt.param_groups for p in g["params"]} for name, opt in self.optimizers.items()}
        self._clip_params = {name: [p for p in self.model.parameters() if id(p) in ids] for name, ids in members.items()}

    def _train_step(self, running: Running) -> dict[str, torch.Tensor]:
        """One optimizer step over ``grad_accum`` micro-batches; returns each clipped optimizer's gradient norm (on device).

        Every optimizer with an active update accumulates the losses of its updates over the
        step's micro-batches from zero gradients, then is clipped and stepped; a micro-batch is
        fetched once, when its first update runs (with one optimizer: fetch, forward and backward
        alternate, micro-batch by micro-batch).
        """
        accum = self.recipe.train.grad_accum
        names = self.mixture.draw(accum)
        batches: dict[int, Any] = {}

        def batch_of(i: int) -> Any:
            if i not in batches:
                wait = time.perf_counter()
                batch = self.mixture.next_batch(names[i])
                # host time spent waiting for the loader: near step_s when data loading is the bottleneck
                running.add("train/data_wait_s", time.perf_counter() - wait)
                batches[i] = move_to(batch, self.device)
            return batches[i]

        norms: dict[str, torch.Tensor] = {}
        lr = self.recipe.optim.lr * lr_factor(self.step, self.recipe.optim, self.max_steps)
        for opt_name in self.order:
            work = [(i, name, u) for i, name in enumerate(names) for u in self.updates[name]
                    if u.optimizer == opt_name and u.active(self.step)]
            if not work:
                continue
            self.model.zero_grad(set_to_none=True)  # nothing from another optimizer's updates leaks into this one
            reach = GradientReach(self.model) if self._check_gradients else None  # first step under DDP: see voxkit.train.unused
            try:
                for j, (i, name, update) in enumerate(work):
                    batch = batch_of(i)
                    last = j == len(work) - 1
                    # the checked first step reduces after the check, all micro-batches unsynced: see voxkit.train.unused
                    unsynced = self.ddp_model is not self.model and (not last or reach is not None)
                    no_sync = self.ddp_model.no_sync() if unsynced else contextlib.nullcontext()
                    with no_sync:
                        with self._autocast():
                            loss, metrics = update.loss(self.ddp_model, batch)
                        (loss / accum).backward()
                    prefix = f"train/{name}" if len(self.updates[name]) == 1 else f"train/{name}/{opt_name}"
                    running.add("train/loss", loss, reduce=True)
                    running.add(f"{prefix}/loss", loss, reduce=True)
                    for key, value in metrics.items():
                        running.add(f"{prefix}/{key}", value)
            finally:
                if reach is not None:
                    reach.close()  # also when a loss raises: the model keeps no hook
            if reach is not None:
                self._check_gradients = False
                stop_unless_every_pass_reached_all(reach, len(work), self.step + 1, self._any_rank, self.device)
                average_gradients([p for p in self.model.parameters() if p.requires_grad])
            optimizer = self.optimizers[opt_name]
            clip = self.recipe.optim.grad_clip
            if clip > 0:
                norms[opt_name] = torch.nn.utils.clip_grad_norm_(self._clip_params[opt_name], clip)
            set_lr(optimizer, lr)
            optimizer.step()
            self.model.zero_grad(set_to_none=True)
        return norms

    def _scalars(self, running: Running, grad_norms: Mapping[str, torch.Tensor], step_s: float) -> dict[str, float]:
        scalars = running.means()
        scalars["train/lr"] = self.recipe.optim.lr * lr_factor(self.step, self.recipe.optim, self.max_steps)  # of the next step
        for name, norm in grad_norms.items():
            scalars["train/grad_norm" if name == MAIN else f"train/grad_norm/{name}"] = float(norm)
        scalars["train/step_s"] = step_s
        return scalars

    # ------------------------------------------------------------------ evaluation and checkpoints

    def _evaluate(self, log: ScalarLog | None) -> None:
        """Rank 0 evaluates every task with the plain model; the training RNG is left untouched.

        No autocast: evaluations decode with streaming caches allocated in the weights' dtype,
        which bf16 activations could not be written into, and a few dev utterances in float32
        cost little. The figures are then those of the exported float32 model.
        """
        if self.rank != 0:
            return
        scalars: dict[str, float] = {}
        devices = [self.device.index] if self.device.type == "cuda" else []
        py_state = random.getstate()
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                for name in sorted(self.tasks):
                    for key, value in self.tasks[name].evaluate(self.model).items():
                        scalars[f"eval/{name}/{key}"] = float(value)
        finally:
            self.model.train()
            random.setstate(py_state)
        self.last_scalars.update(scalars)
        if log is not None and scalars:
            log.log(self.step, scalars)

    def _save(self, out_dir: Path) -> None:
        """Gather every rank's RNG state, then rank 0 writes the checkpoint."""
        rng = rng_state()
        all_rng = gather_objects(rng, self.device) if self.world_size > 1 else [rng]
        if self.rank == 0:
            state = {
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "rng": all_rng,
                "mixture": self.mixture.state_dict(),
                "world_size": self.world_size,
                "fitted_max_steps": self.max_steps if self.max_steps != self.recipe.train.max_steps else None,
                "budget_used_s": self._budget.elapsed() if self._budget is not None and self._budget.active else 0.0,
                "recipe_json": json.dumps(self.recipe.to_dict()),
            }
            save_checkpoint(out_dir, self.step, self.model, state, self.recipe.to_dict(), keep_last=self.recipe.train.keep_last)
        if self.world_size > 1:
            dist.barrier()  # nobody races ahead to a resume/exit while rank 0 is still writing

    def _batch_notice(self, state: Mapping[str, Any], saved_world_size: int) -> str | None:
        """One line on what a resume with another number of processes or another ``grad_accum``
        changes; None when neither changed.

        Why: the effective batch is ``grad_accum x world_size`` micro-batches, so the same command
        on fewer machines silently halves it (and with it the gradient noise the learning rate was
        tuned for), and so does an override of ``train.grad_accum`` meant for memory alone; the
        line says so and names the key that restores it.
        """
        def count(n: int, noun: str) -> str:
            return f"{n} {noun}" if n == 1 else f"{n} {noun}es"

        try:
            saved_accum = int(json.loads(state.get("recipe_json") or "{}").get("train", {}).get("grad_accum", 0))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            saved_accum = 0  # a checkpoint without its recipe: the line says less
        accum = self.recipe.train.grad_accum
        if saved_world_size == self.world_size:
            if saved_accum in (0, accum):
                return None
            return (f"the checkpoint was written with train.grad_accum={saved_accum}, this run has {accum}: a step now averages "
                    f"{count(accum * self.world_size, 'micro-batch')} instead of {saved_accum * self.world_size}")
        line = f"the checkpoint was written by {count(saved_world_size, 'process')}, this run has {self.world_size}"
        if saved_accum > 0:
            before, now = saved_accum * saved_world_size, accum * self.world_size
            if before == now:
                line += f": a step still averages {count(now, 'micro-batch')}"
            else:
                hint = f" (train.grad_accum={before // self.world_size} keeps {before})" if before % self.world_size == 0 else ""
                line += f": a step now averages {count(now, 'micro-batch')} instead of {before}{hint}"
        return line + "; epoch positions carried over, per-process random states reseeded"

    def _restore(self, checkpoint: Path) -> None:
        state = load_checkpoint(checkpoint, self.model, self.optimizers)
        self.step = int(state["step"])
        fitted = state.get("fitted_max_steps")
        if self.recipe.train.time_budget_s > 0:
            self.budget_used_s = float(state.get("budget_used_s", 0.0))  # the rest of the budget, not all of it
            if fitted is not None:  # keep the schedule the budget fitted
                self.max_steps = min(int(fitted), self.max_steps)
        saved_world_size = int(state.get("world_size", self.world_size))
        self.mixture.load_state_dict(state["mixture"], saved_world_size=saved_world_size)
        rng = state.get("rng") or []
        if len(rng) == self.world_size:
            set_rng_state(rng[self.rank])
        else:  # world size changed: keep the fresh per-rank seeds, shifted so they differ from step 0
            seed_everything(self.recipe.train.seed + self.rank + 7919 * self.step)
        if self.rank == 0:
            print(f"resumed from {checkpoint} at step {self.step}", file=sys.stderr, flush=True)
            notice = self._batch_notice(state, saved_world_size)
            if notice is not None:
                print(notice, file=sys.stderr, flush=True)
            if self.step >= self.max_steps:
                print(f"step {self.step} is the end of the schedule (train.max_steps {self.max_steps}): nothing to train; "
                      "raise train.max_steps to go on", file=sys.stderr, flush=True)

