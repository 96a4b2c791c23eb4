"""Names in a recipe -> the code that builds the model and the tasks; the trainer names no model.

``[model] name = "..."`` and ``[tasks.<name>]`` (or ``type = "..."``) are looked up here. A model
package declares what it can train as Python entry points in its distribution's metadata, one per
name, pointing at a :class:`ModelSpec` or :class:`TaskSpec` object that lives next to the model::

    [project.entry-points."voxkit.models"]
    my_model = "mypackage.task:MY_MODEL"

    [project.entry-points."voxkit.tasks"]
    my_task = "mypackage.task:MY_TASK"

Why entry points: the trainer finds a new model package without an edit of voxkit/train, a
package outside voxkit plugs in the same way, and listing the known names reads metadata only.
Only the module of the name a recipe asks for is imported, so ``voxkit train --help`` stays instant
and an uninstalled optional part only matters to the recipes that use it. Code that builds specs
at run time (tests, notebooks) adds them with :func:`register_model` / :func:`register_task`.

Each spec declares its section's keys as a dataclass (``options``): every default lives there,
and :func:`check_sections` rejects any other key with the closest known one as a suggestion.

Factory signatures:

- model: ``build(options) -> nn.Module``; ``options`` is the ``[model]`` table (without ``name``)
  as an instance of the spec's options dataclass;
- task: ``build(options, model, [tokenizer], [recipe]) -> Task``; ``options`` is the
  ``[tasks.<name>]`` table without the trainer's ``weight``/``type`` keys, as an instance of the
  spec's options dataclass; ``model`` is the one model instance every task of the recipe shares. A
  factory that declares a parameter named ``tokenizer`` receives the tokenizer named by
  ``data.tokenizer``; one that declares ``recipe`` receives the whole :class:`~voxkit.train.recipe.Recipe`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from voxkit.config import ConfigError, check_table, closest, strict_from_dict
from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    from torch import nn

    from voxkit.tokenizer import Tokenizer
    from voxkit.train.recipe import Recipe
    from voxkit.train.task import Task

MODEL_GROUP = "voxkit.models"
TASK_GROUP = "voxkit.tasks"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build a model from a recipe's ``[model]`` section."""

    options: type  # dataclass of the section's keys (besides ``name``), with their defaults
    build: Callable[[Any], nn.Module]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a task from a recipe's ``[tasks.<name>]`` section."""

    options: type  # dataclass of the section's keys (besides the trainer's weight and type), with their defaults
    build: Callable[..., Task]


_REGISTERED: dict[str, dict[str, ModelSpec | TaskSpec]] = {MODEL_GROUP: {}, TASK_GROUP: {}}
_KIND = {MODEL_GROUP: "model", TASK_GROUP: "task"}
_SPEC_TYPE = {MODEL_GROUP: ModelSpec, TASK_GROUP: TaskSpec}


def register_model(name: str, spec: ModelSpec) -> None:
    """Make ``[model] name = "<name>"`` build its model with ``spec`` (takes precedence over entry points)."""
    _register(MODEL_GROUP, name, spec)


def register_task(name: str, spec: TaskSpec) -> None:
    """Make ``[tasks.<name>]`` (or ``type = "<name>"``) build its task with ``spec``."""
    _register(TASK_GROUP, name, spec)


def _register(group: str, name: str, spec: ModelSpec | TaskSpec) -> None:
    if not isinstance(spec, _SPEC_TYPE[group]) or not dataclasses.is_dataclass(spec.options):
        raise TypeError(f"{_KIND[group]} {name!r}: expected a {_SPEC_TYPE[group].__name__} whose options is a dataclass, got {spec!r}")
    _REGISTERED[group][name] = spec


def known_models() -> list[str]:
    return _known(MODEL_GROUP)


def known_tasks() -> list[str]:
    return _known(TASK_GROUP)


def _known(group: str) -> list[str]:
    return sorted(set(_REGISTERED[group]) | {ep.name for ep in entry_points(group=group)})


def model_spec(name: str) -> ModelSpec:
    return _lookup(MODEL_GROUP, name, ("model", "name"))  # type: ignore[return-value]


def task_spec(name: str, section: str | None = None) -> TaskSpec:
    """The spec of task type ``name`` (``section``: the recipe section that asks for it, for error messages)."""
    return _lookup(TASK_GROUP, name, ("tasks", section or name))  # type: ignore[return-value]


def _lookup(group: str, name: str, path: tuple[str, ...]) -> ModelSpec | TaskSpec:
    kind = _KIND[group]
    if name in _REGISTERED[group]:
        return _REGISTERED[group][name]
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        known = _known(group)
        guess = closest(name, known)
        hint = f"did you mean {guess!r}? " if guess else ""
        message = f"unknown {kind} {name!r}; {hint}known: {', '.join(known) or 'none'}"
        if not any(True for _ in entry_points(group=group)):
            message += f" (no package declares {group!r} entry points: after updating a voxkit checkout, re-run `pip install -e .`)"
        raise ConfigError(message, path)
    point = found[0]
    try:
        module = importlib.import_module(point.module)
    except ModuleNotFoundError as err:
        raise VoxkitError(f"{kind} {name!r} needs {err.name}, which is not installed") from None
    spec = getattr(module, point.attr or "", None)
    if spec is None:
        raise VoxkitError(f"{kind} {name!r}: the entry point names {point.value}, which does not exist")
    _register(group, name, spec)
    return spec


# ---------------------------------------------------------------------------- checking and building


def check_sections(recipe: Recipe) -> None:
    """Check ``[model]`` and every task's options against the keys their specs declare, in place.

    Values are converted to their fields' types (command-line text becomes numbers, lists...), and
    each section is built into its options dataclass once, so that the dataclass's own validation
    runs too. Nothing is imported beyond the specs' modules and nothing heavy is built.
    """
    from voxkit.train.recipe import TRAINER_TASK_KEYS

    model_name = _model_name(recipe.model)
    model = model_spec(model_name)
    typed = _without(check_table(model.options, recipe.model, ("model",), ignore=("name",)), ("name",))
    strict_from_dict(model.options, typed, ("model",))
    recipe.model = {"name": str(model_name), **typed}
    for name in recipe.tasks:
        task = task_spec(recipe.task_type(name), name)
        typed = check_table(task.options, recipe.tasks[name], ("tasks", name), ignore=TRAINER_TASK_KEYS)
        strict_from_dict(task.options, _without(typed, TRAINER_TASK_KEYS), ("tasks", name))
        recipe.tasks[name] = typed


def _without(table: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k not in keys}


def _model_name(section: dict[str, Any]) -> str:
    name = section.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"[model] needs a name; known models: {', '.join(known_models()) or 'none'}", ("model", "name"))
    return name


def build_model(section: dict[str, Any]) -> nn.Module:
    """The model named by a recipe's ``[model]`` section, built from its checked options."""
    spec = model_spec(_model_name(section))
    return spec.build(strict_from_dict(spec.options, _without(section, ("name",)), ("model",)))


def build_tasks(recipe: Recipe, model: nn.Module) -> dict[str, Task]:
    """Every task of the recipe, built against ``model`` (the one backbone instance all tasks share)."""
    if not recipe.tasks:
        raise VoxkitError("the recipe has no [tasks.<name>] section")
    tokenizer: Tokenizer | None = None
    tasks: dict[str, Task] = {}
    for name in recipe.tasks:
        spec = task_spec(recipe.task_type(name), name)
        options = strict_from_dict(spec.options, recipe.task_options(name), ("tasks", name))
        params = inspect.signature(spec.build).parameters
        kwargs: dict[str, Any] = {}
        if "tokenizer" in params:
            tokenizer = tokenizer or recipe_tokenizer(recipe)
            kwargs["tokenizer"] = tokenizer
        if "recipe" in params:
            kwargs["recipe"] = recipe
        tasks[name] = spec.build(options, model, **kwargs)
    return tasks


def recipe_tokenizer(recipe: Recipe) -> Tokenizer:
    """The tokenizer named by ``data.tokenizer``: "byte", "tekken" (shipped) or a model folder."""
    from voxkit.checkpoint import tokenizer_from_spec
    from voxkit.errors import VoxkitError

    try:
        return tokenizer_from_spec(recipe.data.tokenizer)
    except VoxkitError as err:  # name the recipe key: "model folder not found" alone does not say which
        raise type(err)(f"data.tokenizer: {err}") from None
