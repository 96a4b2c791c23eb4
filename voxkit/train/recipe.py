"""Training recipes: one TOML file, overridable from the command line, saved with every run.

A recipe has five sections. ``optim`` and ``train`` belong to the trainer and are typed dataclasses,
so a typo (``train.max_step``) or a wrong type (``optim.lr=fast``) fails before any work starts.
``model``, ``data`` and ``tasks.<name>`` belong to the model and task factories; the trainer cannot
know their keys, so they stay free-form dicts, and an override may only replace a key the recipe
already has (typed by its current value), or add one explicitly with a leading ``+``
(``+tasks.asr.max_delay=30``). Every error is a :class:`~voxkit.errors.VoxkitError` with the
offending key in the message.

The resolved recipe (file + overrides) is written as ``recipe.json`` in the run folder and inside
each checkpoint, so a run can always be reproduced or resumed from what it actually used.
"""

from __future__ import annotations

import dataclasses
import json
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the identical backport, if installed
    import tomli as tomllib  # type: ignore[no-redef]
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_type_hints

from voxkit.errors import VoxkitError

SCHEDULES = ("cosine", "linear", "constant")
AMP_MODES = ("bf16", "off")
TRAINER_TASK_KEYS = ("weight", "type")  # keys of a [tasks.<name>] section the trainer consumes


class RecipeError(VoxkitError):
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
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


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
    amp: str = "bf16"  # bf16 autocast on CUDA; always off on CPU
    num_threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    progress: bool = True  # tqdm bar on rank 0 when stderr is a terminal
    find_unused_parameters: bool = False  # DDP: force on for one task that skips parameters (always on for mixtures)


@dataclasses.dataclass
class Recipe:
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tasks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ task sections

    def task_weights(self) -> dict[str, float]:
        return {name: float(section.get("weight", 1.0)) for name, section in self.tasks.items()}

    def task_type(self, name: str) -> str:
        """Registry name of task ``name``: its ``type`` key, else the section name (two ASR sets: ``type = "asr"``)."""
        return str(self.tasks[name].get("type", name))

    def task_options(self, name: str) -> dict[str, Any]:
        """The task's own options: its section without the keys the trainer consumes."""
        return {k: v for k, v in self.tasks[name].items() if k not in TRAINER_TASK_KEYS}

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: expected a table at the top level")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise RecipeError(f"{where}: unknown section(s) {sorted(unknown)}; known: model, data, optim, train, tasks")
        recipe = cls(
            model=_table(data.get("model", {}), f"{where}: [model]"),
            data=_table(data.get("data", {}), f"{where}: [data]"),
            optim=_dataclass_from(OptimConfig, data.get("optim", {}), f"{where}: [optim]"),
            train=_dataclass_from(TrainConfig, data.get("train", {}), f"{where}: [train]"),
            tasks={name: _table(sec, f"{where}: [tasks.{name}]") for name, sec in _table(data.get("tasks", {}), f"{where}: [tasks]").items()},
        )
        recipe.validate(where)
        return recipe

    def validate(self, where: str = "recipe") -> None:
        """Reject values the trainer cannot run with, naming the key."""
        o, t = self.optim, self.train
        checks: list[tuple[bool, str]] = [
            (o.lr > 0, f"optim.lr must be > 0, got {o.lr}"),
            (len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), f"optim.betas must be two numbers in [0, 1), got {o.betas}"),
            (o.eps > 0, f"optim.eps must be > 0, got {o.eps}"),
            (o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}"),
            (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
            (o.schedule in SCHEDULES, f"optim.schedule must be one of {list(SCHEDULES)}, got {o.schedule!r}"),
            (0 <= o.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {o.min_lr_ratio}"),
            (o.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0 = off), got {o.grad_clip}"),
            (t.max_steps >= 1, f"train.max_steps must be >= 1, got {t.max_steps}"),
            (t.time_budget_s >= 0, f"train.time_budget_s must be >= 0 (0 = no budget), got {t.time_budget_s}"),
            (t.grad_accum >= 1, f"train.grad_accum must be >= 1, got {t.grad_accum}"),
            (t.log_every >= 1, f"train.log_every must be >= 1, got {t.log_every}"),
            (t.eval_every >= 0, f"train.eval_every must be >= 0, got {t.eval_every}"),
            (t.save_every >= 0, f"train.save_every must be >= 0, got {t.save_every}"),
            (t.keep_last >= 1, f"train.keep_last must be >= 1, got {t.keep_last}"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device) is not None, f"train.device must be auto, cpu, cuda or cuda:N, got {t.device!r}"),
            (t.amp in AMP_MODES, f"train.amp must be one of {list(AMP_MODES)}, got {t.amp!r}"),
            (t.num_threads >= 0, f"train.num_threads must be >= 0, got {t.num_threads}"),
            (bool(t.out_dir), "train.out_dir is empty"),
        ]
        for name, section in self.tasks.items():
            w = section.get("weight", 1.0)
            checks.append((isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0, f"tasks.{name}.weight must be a number >= 0, got {w!r}"))
            checks.append((isinstance(section.get("type", name), str), f"tasks.{name}.type must be a string"))
        for ok, message in checks:
            if not ok:
                raise RecipeError(f"{where}: {message}")
        if self.tasks and sum(self.task_weights().values()) <= 0:
            raise RecipeError(f"{where}: all task weights are 0")


# ---------------------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a TOML recipe (or a saved ``recipe.json``), apply ``section.key=value`` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {err}") from None
    recipe = Recipe.from_dict(data, where=str(path))
    return apply_overrides(recipe, overrides)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    Path(path).write_text(json.dumps(recipe.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def apply_overrides(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """Apply ``a.b.c=value`` overrides in order; values are typed by the key they replace."""
    data = recipe.to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        add = key.startswith("+")
        key = key.removeprefix("+").strip()
        parts = key.split(".")
        if not sep or not key or any(not p for p in parts):
            raise RecipeError(f"override {item!r}: expected section.key=value (e.g. train.max_steps=200)")
        if len(parts) < 2:
            raise RecipeError(f"override {item!r}: name a key inside a section (e.g. optim.lr=3e-4)")
        section = parts[0]
        if section in ("optim", "train"):
            cls = OptimConfig if section == "optim" else TrainConfig
            hints = get_type_hints(cls)
            if len(parts) != 2 or parts[1] not in hints:
                raise RecipeError(f"override {item!r}: unknown key {key!r}; [{section}] has {sorted(hints)}")
            data[section][parts[1]] = _parse_typed(raw, getattr(cls(), parts[1]), item)
            continue
        if section not in ("model", "data", "tasks"):
            raise RecipeError(f"override {item!r}: unknown section {section!r}; known: model, data, optim, train, tasks")
        node = data[section]
        for depth, part in enumerate(parts[1:-1], start=1):
            if part not in node:
                if not add:
                    raise RecipeError(f"override {item!r}: unknown key {'.'.join(parts[: depth + 1])!r} (use +{key}=... to add it)")
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {'.'.join(parts[: depth + 1])!r} is a value, not a table")
        leaf = parts[-1]
        if leaf in node:
            node[leaf] = _parse_typed(raw, node[leaf], item)
        elif add:
            node[leaf] = _parse_literal(raw)
        else:
            known = sorted(node) if node else "no keys"
            raise RecipeError(f"override {item!r}: unknown key {key!r} (known here: {known}; use +{key}=... to add it)")
    return Recipe.from_dict(data, where="recipe after overrides")


# ---------------------------------------------------------------------------- typing helpers


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a table, got {type(value).__name__}")
    return dict(value)


def _dataclass_from(cls: type, data: Any, where: str) -> Any:
    data = _table(data, where)
    hints = get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(hints)}")
    defaults = cls()
    kwargs = {k: _check_type(v, getattr(defaults, k), f"{where} {k}") for k, v in data.items()}
    return cls(**kwargs)


def _check_type(value: Any, like: Any, where: str) -> Any:
    """``value`` converted to the type of ``like`` if that loses nothing (int -> float), else an error."""
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(like, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(like, list):
        ok = isinstance(value, list)
        if ok and like:
            value = [_check_type(v, like[0], f"{where}[{i}]") for i, v in enumerate(value)]
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise RecipeError(f"{where}: expected {_type_name(like)}, got {value!r}")
    return value


def _parse_typed(raw: str, like: Any, item: str) -> Any:
    """Parse an override value as the type of the value it replaces."""
    raw = raw.strip()
    if isinstance(like, dict):
        raise RecipeError(f"override {item!r}: that key is a table; override its keys one by one")
    if isinstance(like, str):
        return raw
    if isinstance(like, bool):
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise RecipeError(f"override {item!r}: expected true or false")
    try:
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
    except ValueError:
        raise RecipeError(f"override {item!r}: expected {_type_name(like)}, got {raw!r}") from None
    return _check_type(_parse_literal(raw), like, f"override {item!r}")


def _parse_literal(raw: str) -> Any:
    """A TOML value (number, bool, string, array, inline table); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def _type_name(like: Any) -> str:
    if isinstance(like, bool):
        return "true or false"
    if isinstance(like, list):
        return f"a list of {_type_name(like[0])}" if like else "a list"
    return {int: "an integer", float: "a number", str: "a string", dict: "a table"}.get(type(like), type(like).__name__)
