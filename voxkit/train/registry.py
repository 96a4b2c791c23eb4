"""Names in a recipe -> the code that builds the model and the tasks.

``[model] name = "realtime_recognizer"`` and ``[tasks.asr]`` (or ``type = "asr"``) are looked up
here. Known factories are listed as ``"module:function"`` strings and imported only when a recipe
asks for them, so ``voxkit train --help`` stays instant and a missing optional part (e.g. TTS)
only matters to recipes that use it. Code outside voxkit adds its own with :func:`register_model`
and :func:`register_task`.

Factory signatures:

- model: ``factory(section: dict) -> nn.Module``; ``section`` is the ``[model]`` table, ``name``
  included;
- task: ``factory(options: dict, model: nn.Module, [tokenizer], [recipe]) -> Task``; ``options`` is
  the ``[tasks.<name>]`` table without the trainer's ``weight``/``type`` keys. A factory that
  declares a parameter named ``tokenizer`` receives the tokenizer named by ``data.tokenizer``
  (``"byte"``, ``"tekken"`` = shipped Tekken, or a model folder; default ``"tekken"``); one that
  declares ``recipe`` receives the whole :class:`~voxkit.train.recipe.Recipe`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    from torch import nn

    from voxkit.tokenizer import Tokenizer
    from voxkit.train.recipe import Recipe
    from voxkit.train.task import Task

ModelFactory = Callable[[dict[str, Any]], "nn.Module"]
TaskFactory = Callable[..., "Task"]

_MODELS: dict[str, ModelFactory | str] = {
    "realtime_recognizer": "voxkit.train.asr_task:build_recognizer",
}
_TASKS: dict[str, TaskFactory | str] = {
    "asr": "voxkit.train.asr_task:build_asr_task",
}


def register_model(name: str, factory: ModelFactory | str) -> None:
    """Make ``[model] name = "<name>"`` build its model with ``factory`` (a callable or "module:function")."""
    _MODELS[name] = factory


def register_task(name: str, factory: TaskFactory | str) -> None:
    """Make ``[tasks.<name>]`` (or ``type = "<name>"``) build its task with ``factory``."""
    _TASKS[name] = factory


def _resolve(table: dict[str, Any], name: str, kind: str) -> Callable[..., Any]:
    if name not in table:
        raise VoxkitError(f"unknown {kind} {name!r}; known: {sorted(table)}")
    factory = table[name]
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                raise VoxkitError(f"{kind} {name!r} needs {module_name}, which is not part of this installation") from None
            raise
        try:
            factory = getattr(module, attr)
        except AttributeError:
            raise VoxkitError(f"{kind} {name!r}: {module_name} has no {attr}") from None
        table[name] = factory
    return factory


def build_model(section: dict[str, Any]) -> nn.Module:
    """The model named by a recipe's ``[model]`` section."""
    name = section.get("name")
    if not isinstance(name, str) or not name:
        raise VoxkitError(f"recipe [model] needs a name; known: {sorted(_MODELS)}")
    return _resolve(_MODELS, name, "model")(dict(section))


def build_tasks(recipe: Recipe, model: nn.Module) -> dict[str, Task]:
    """Every task of the recipe, built against ``model`` (the shared backbone instance)."""
    if not recipe.tasks:
        raise VoxkitError("the recipe has no [tasks.<name>] section")
    tokenizer: Tokenizer | None = None
    tasks: dict[str, Task] = {}
    for name in recipe.tasks:
        factory = _resolve(_TASKS, recipe.task_type(name), "task")
        params = inspect.signature(factory).parameters
        kwargs: dict[str, Any] = {}
        if "tokenizer" in params:
            tokenizer = tokenizer or recipe_tokenizer(recipe)
            kwargs["tokenizer"] = tokenizer
        if "recipe" in params:
            kwargs["recipe"] = recipe
        tasks[name] = factory(recipe.task_options(name), model, **kwargs)
    return tasks


def recipe_tokenizer(recipe: Recipe) -> Tokenizer:
    """The tokenizer named by ``data.tokenizer``: "byte", "tekken" (shipped) or a model folder."""
    from voxkit.subset_tokenizer import load_folder_tokenizer
    from voxkit.tokenizer import ByteTokenizer, TekkenTokenizer

    spec = recipe.data.get("tokenizer", "tekken")
    if spec == "byte":
        return ByteTokenizer()
    if spec == "tekken":
        return TekkenTokenizer.shipped()
    if not isinstance(spec, str):
        raise VoxkitError(f"data.tokenizer must be 'byte', 'tekken' or a folder, got {spec!r}")
    return load_folder_tokenizer(spec)
