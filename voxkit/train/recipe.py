"""Training recipes: one TOML file, overridable from the command line, saved with every run.

A recipe has five sections. ``optim``, ``train`` and ``data`` belong to the trainer and are typed
dataclasses here. ``model`` and ``tasks.<name>`` belong to a model and its tasks, which declare
their keys as dataclasses of their own (see :mod:`voxkit.train.registry`): :func:`load_recipe`
checks those sections against them too. Every key anywhere is therefore known: a typo
(``train.max_step``, ``[model.decoder] n_layer``) or a wrong type (``optim.lr=fast``) fails before
any work starts, with a :class:`RecipeError` that names the key, suggests the closest known one, and
says whether it came from the file or from a command-line override. Defaults are the dataclasses'
own, so no default is written twice.

The resolved recipe (file + overrides) is written as ``recipe.json`` in the run folder and inside
each checkpoint, so a run can always be reproduced or resumed from what it actually used.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from voxkit.config import ConfigError, RawValue, check_table, closest, strict_from_dict, unknown_key_error

SCHEDULES = ("cosine", "linear", "constant")
AMP_MODES = ("bf16", "off")
SECTIONS = ("model", "data", "optim", "train", "tasks")


class RecipeError(ConfigError):
    """A recipe file or override is missing, malformed, or names an unknown key."""


@dataclasses.dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule (linear warmup, then ``schedule`` down to ``min_lr_ratio``)."""

    lr: float = 3e-4
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm of each optimizer; 0 disables clipping


@dataclasses.dataclass
class TrainConfig:
    """Loop, logging, checkpointing and device settings. ``*_every = 0`` means only at the end."""

    max_steps: int = 1000  # optimizer steps
    # > 0: fit the run into this many seconds of training. After timing a few steps the schedule is
    # rescaled to the steps that fit (max_steps stays an upper bound), and the loop stops and
    # saves when the time is up; for fixed-length jobs such as a borrowed GPU.
    time_budget_s: float = 0.0
    grad_accum: int = 1  # micro-batches per optimizer step (per rank)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    save_every: int = 1000
    keep_last: int = 3  # checkpoints kept in out_dir/checkpoints
    out_dir: str = "runs/default"
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    amp: str = "bf16"  # bf16 autocast on CUDA; off on CPU unless cpu_amp
    # bf16 autocast on CPU as well (with amp = "bf16"). Off by default so that CPU runs and tests stay
    # float32-exact; on a CPU with bf16 instructions it makes training steps faster (docs/training.md).
    cpu_amp: bool = False
    num_threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    progress: bool = True  # tqdm bar on rank 0 when stderr is a terminal
    find_unused_parameters: bool = False  # DDP: force on for one task that skips parameters (always on for mixtures)


@dataclasses.dataclass
class DataConfig:
    """Data settings every task shares; a task's own data (manifests, batch size) sit in its section."""

    tokenizer: str = "tekken"  # "byte", "tekken" (the shipped Tekken) or a model folder


@dataclasses.dataclass
class TaskKeys:
    """The keys of a ``[tasks.<name>]`` section that the trainer consumes; the rest are the task's options."""

    weight: float = 1.0  # mixture weight
    type: str = ""  # registry name of the task; empty: the section name


TRAINER_TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskKeys))


@dataclasses.dataclass
class Recipe:
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tasks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ task sections

    def task_keys(self, name: str) -> TaskKeys:
        return strict_from_dict(TaskKeys, {k: v for k, v in self.tasks[name].items() if k in TRAINER_TASK_KEYS}, ("tasks", name))

    def task_weights(self) -> dict[str, float]:
        return {name: self.task_keys(name).weight for name in self.tasks}

    def task_type(self, name: str) -> str:
        """Registry name of task ``name``: its ``type`` key, else the section name (two ASR sets: ``type = "asr"``)."""
        return self.task_keys(name).type or name

    def task_options(self, name: str) -> dict[str, Any]:
        """The task's own options: its section without the keys the trainer consumes."""
        return {k: v for k, v in self.tasks[name].items() if k not in TRAINER_TASK_KEYS}

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> Recipe:
        """The trainer's view of ``data``: its own sections typed and checked; ``model`` and the tasks'
        options are checked against their declared keys by :func:`load_recipe`. ``where`` (a file
        name) prefixes error messages."""
        try:
            if not isinstance(data, dict):
                raise RecipeError("expected a table at the top level")
            for section in data:
                if section not in SECTIONS:
                    raise unknown_key_error(section, SECTIONS, ())
            tasks = _table(data.get("tasks", {}), ("tasks",))
            recipe = cls(
                model=_table(data.get("model", {}), ("model",)),
                data=strict_from_dict(DataConfig, data.get("data", {}), ("data",)),
                optim=strict_from_dict(OptimConfig, data.get("optim", {}), ("optim",)),
                train=strict_from_dict(TrainConfig, data.get("train", {}), ("train",)),
                tasks={name: check_table(TaskKeys, _table(section, ("tasks", name)), ("tasks", name), ignore=_not_trainer(section))
                       for name, section in tasks.items()},
            )
            recipe.validate()
        except ConfigError as err:
            raise _located(err, where) from None
        return recipe

    def validate(self, where: str = "") -> None:
        """Reject values the trainer cannot run with, naming the key."""
        o, t = self.optim, self.train
        checks: list[tuple[bool, str, str]] = [
            (0 < o.lr < math.inf, "optim.lr", f"must be a finite number > 0, got {o.lr}"),
            (len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas", f"must be two numbers in [0, 1), got {o.betas}"),
            (o.eps > 0, "optim.eps", f"must be > 0, got {o.eps}"),
            (o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}"),
            (o.warmup_steps >= 0, "optim.warmup_steps", f"must be >= 0, got {o.warmup_steps}"),
            (o.schedule in SCHEDULES, "optim.schedule", f"must be one of {list(SCHEDULES)}, got {o.schedule!r}"),
            (0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", f"must be in [0, 1], got {o.min_lr_ratio}"),
            (o.grad_clip >= 0, "optim.grad_clip", f"must be >= 0 (0 = off), got {o.grad_clip}"),
            (t.max_steps >= 1, "train.max_steps", f"must be >= 1, got {t.max_steps}"),
            (t.time_budget_s >= 0, "train.time_budget_s", f"must be >= 0 (0 = no budget), got {t.time_budget_s}"),
            (t.grad_accum >= 1, "train.grad_accum", f"must be >= 1, got {t.grad_accum}"),
            (t.log_every >= 1, "train.log_every", f"must be >= 1, got {t.log_every}"),
            (t.eval_every >= 0, "train.eval_every", f"must be >= 0, got {t.eval_every}"),
            (t.save_every >= 0, "train.save_every", f"must be >= 0, got {t.save_every}"),
            (t.keep_last >= 1, "train.keep_last", f"must be >= 1, got {t.keep_last}"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device) is not None, "train.device",
             f"must be auto, cpu, cuda or cuda:N, got {t.device!r}"),
            (t.amp in AMP_MODES, "train.amp", f"must be one of {list(AMP_MODES)}, got {t.amp!r}"),
            (not t.cpu_amp or t.amp == "bf16", "train.cpu_amp", f"needs train.amp = \"bf16\", got {t.amp!r}"),
            (t.num_threads >= 0, "train.num_threads", f"must be >= 0, got {t.num_threads}"),
            (bool(t.out_dir), "train.out_dir", "is empty"),
        ]
        try:
            weights = self.task_weights()
            checks += [(w >= 0, f"tasks.{name}.weight", f"must be >= 0, got {w}") for name, w in weights.items()]
            for ok, key, message in checks:
                if not ok:
                    raise RecipeError(f"{key} {message}", tuple(key.split(".")))
            if weights and sum(weights.values()) <= 0:
                raise RecipeError("all task weights are 0", ("tasks",))
        except ConfigError as err:
            raise _located(err, where) from None


# ---------------------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a TOML recipe (or a saved ``recipe.json``), apply ``section.key=value`` overrides, check every key.

    The model and task sections are checked against the keys their factories declare, which
    imports the model's package (not the model's weights: nothing is built).
    """
    path = Path(path)
    if path.is_dir():  # a run folder given where its recipe goes
        saved = path / "recipe.json"
        hint = f"; its saved recipe is {saved}" if saved.is_file() else ""
        raise RecipeError(f"{path} is a folder, not a recipe file (.toml, or a run's recipe.json){hint}")
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {err}") from None
    return apply_overrides(data, overrides, where=str(path))


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    Path(path).write_text(json.dumps(recipe.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str], where: str = "recipe") -> Recipe:
    """``data`` (a recipe as a dict) with ``a.b.c=value`` overrides applied in order, then fully checked.

    A value is parsed by the type of the field it sets (``optim.lr=3e-4`` is a number,
    ``data.tokenizer=byte`` text, ``model.decoder.sliding_window=[64, 128]`` a list). A key the
    recipe lacks may be set as long as the section's owner declares it; a new task section needs a
    leading ``+`` (``+tasks.text.weight=0.5``) so that a misspelt task name is not a new task. An
    error caused by an override names that override.
    """
    from voxkit.train.registry import check_sections

    if not isinstance(data, Mapping):
        raise RecipeError(f"{where}: expected a table at the top level")
    data = copy.deepcopy(dict(data))
    origin: dict[tuple[str, ...], str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        add = key.startswith("+")
        parts = tuple(key.removeprefix("+").strip().split("."))
        if not sep or not all(parts):
            raise RecipeError(f"override {item!r}: expected section.key=value (e.g. train.max_steps=200)")
        if len(parts) < 2:
            raise RecipeError(f"override {item!r}: name a key inside a section (e.g. optim.lr=3e-4)")
        if parts[0] not in SECTIONS:
            guess = closest(parts[0], SECTIONS)
            hint = f"did you mean {guess!r}?" if guess else f"known: {', '.join(SECTIONS)}"
            raise RecipeError(f"override {item!r}: unknown section {parts[0]!r}; {hint}")
        if not isinstance(data.get(parts[0], {}), dict):
            raise RecipeError(f"override {item!r}: [{parts[0]}] must be a table, got {type(data[parts[0]]).__name__}")
        if parts[0] == "tasks" and parts[1] not in data.get("tasks", {}) and not add:
            known = sorted(data.get("tasks", {}))
            guess = closest(parts[1], known)
            hint = f"did you mean {guess!r}? " if guess else ""
            raise RecipeError(f"override {item!r}: the recipe has no task {parts[1]!r} (tasks: {', '.join(known) or 'none'}); {hint}"
                              f"add one with +{'.'.join(parts)}=...")
        node = data
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {'.'.join(parts[: depth + 1])!r} is a value, not a table")
        if isinstance(node.get(parts[-1]), dict):
            raise RecipeError(f"override {item!r}: {'.'.join(parts)!r} is a table; override its keys one by one")
        node[parts[-1]] = RawValue(raw)
        origin[parts] = item
    try:
        recipe = Recipe.from_dict(data)
        check_sections(recipe)
    except ConfigError as err:
        # the last override that set this key (or the table holding it, or a key inside it)
        culprits = [item for parts, item in origin.items()
                    if err.path[: len(parts)] == parts or (len(err.path) > 1 and parts[: len(err.path)] == err.path)]
        raise _located(err, f"override {culprits[-1]!r}" if culprits else where) from None
    return recipe


# ---------------------------------------------------------------------------- helpers


def _located(err: ConfigError, where: str) -> RecipeError:
    """``err`` as a :class:`RecipeError` that says where the offending entry came from."""
    return RecipeError(f"{where}: {err}" if where else str(err), err.path)


def _table(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecipeError(f"[{'.'.join(path)}] must be a table, got {type(value).__name__}", path)
    return dict(value)


def _not_trainer(section: Mapping[str, Any]) -> list[str]:
    """The keys of a task section that the task, not the trainer, checks."""
    return [k for k in section if k not in TRAINER_TASK_KEYS]
