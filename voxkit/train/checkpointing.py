"""Atomic, resumable training checkpoints that never unpickle code.

Layout of ``<out_dir>/checkpoints/step_00001000/``:

- ``model.safetensors``: ``model.state_dict()`` (tied weights stored once, restored by name);
- ``train_state.pt``: step, every optimizer's state (by name), RNG states, task-mixture position
  and the resolved recipe; only tensors and plain containers, read with ``torch.load(weights_only=True)``
  so a checkpoint from elsewhere cannot run code;
- ``config.json``: ``model.export_config()`` when the model has it, enough to rebuild the model,
  with a ``voxkit_checkpoint`` marker (kind "training", the recipe's model name) so that loaders
  tell it from a published folder (voxkit/checkpoint.py);
- ``recipe.json``: the resolved recipe, human-readable.

A checkpoint is written into a hidden temporary folder next to the others, every file and the
folder are fsynced, and only then is the folder renamed to its final name
(:func:`voxkit.fileio.atomic_folder`, the one atomic-write implementation). A crash at any point
leaves either the previous set of checkpoints or the new complete one, never a half-written
``step_*`` folder; :func:`latest_checkpoint` therefore trusts any ``step_*`` folder it finds.
Exporting to the published layouts (e.g. the realtime recogniser's native folder) is the model
owner's job and starts from :func:`load_checkpoint`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from voxkit.checkpoint import HF_CONFIG, HF_WEIGHTS, TRAINING_RECIPE, TRAINING_STATE, mark_training_config
from voxkit.errors import CheckpointError
from voxkit.fileio import atomic_folder

CHECKPOINTS = "checkpoints"
MODEL_FILE, STATE_FILE, CONFIG_FILE, RECIPE_FILE = HF_WEIGHTS, TRAINING_STATE, HF_CONFIG, TRAINING_RECIPE
_STEP_DIR = re.compile(r"step_(\d+)")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of the run in ``out_dir``, or None."""
    checkpoints = list_checkpoints(out_dir)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    train_state: Mapping[str, Any],
    recipe: Mapping[str, Any] | None = None,
    keep_last: int = 3,
) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep_last``.

    ``train_state`` must hold only tensors, numbers, strings, None and lists/dicts of them.
    Call on one process only (rank 0).
    """
    from safetensors.torch import save_model

    final = Path(out_dir) / CHECKPOINTS / f"step_{step:08d}"
    plain = unwrap(model)
    with atomic_folder(final) as tmp:
        save_model(plain, str(tmp / MODEL_FILE), metadata={"format": "pt", "step": str(step)})
        torch.save({**train_state, "step": step}, tmp / STATE_FILE)
        if callable(getattr(plain, "export_config", None)):
            # Marked as a training checkpoint of the recipe's model: loaders tell it from published folders.
            name = ((recipe or {}).get("model") or {}).get("name")
            config = mark_training_config(plain.export_config(), name)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if recipe is not None:
            (tmp / RECIPE_FILE).write_text(json.dumps(dict(recipe), indent=2, sort_keys=True) + "\n")
    for stale in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizers: Mapping[str, torch.optim.Optimizer] | torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load weights into ``model`` (and the optimizers' states when given); return the train state.

    ``path`` is a checkpoint folder, or a run folder (its latest checkpoint is used). Weights are
    copied into the model's existing parameters, so they keep their device and dtype.
    ``optimizers`` maps names to optimizers (a single optimizer is ``"main"``); the checkpoint
    must hold the same names.
    """
    path = Path(path)
    if not (path / MODEL_FILE).is_file():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no checkpoint in {path} (expected {MODEL_FILE} or {CHECKPOINTS}/step_*)")
        path = latest
    from safetensors.torch import load_model

    try:
        load_model(unwrap(model), str(path / MODEL_FILE), strict=True)
    except (RuntimeError, OSError) as err:
        # torch lists every mismatched tensor; the first says what changed, the count how much
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        raise CheckpointError(
            f"{path / MODEL_FILE} does not fit the model (has the recipe's [model] changed since?): {detail}{more}"
        ) from None
    try:
        state: dict[str, Any] = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} has no {STATE_FILE}") from None
    except Exception as err:  # pickle errors come in many types; all mean "not a safe, valid state file"
        raise CheckpointError(f"{path / STATE_FILE} is not a valid train state: {err}") from None
    if optimizers is not None:
        _load_optimizers(path, state, {"main": optimizers} if isinstance(optimizers, torch.optim.Optimizer) else optimizers)
    state["path"] = str(path)
    return state


def _load_optimizers(path: Path, state: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    saved = state.get("optimizers")
    if saved is None and "optimizer" in state:
        saved = {"main": state["optimizer"]}  # written before runs could have several optimizers
    if saved is None:
        raise CheckpointError(f"{path / STATE_FILE} has no optimizer state")
    if set(saved) != set(optimizers):
        raise CheckpointError(f"{path} holds the optimizers {sorted(saved)}, but this run has {sorted(optimizers)}")
    for name, optimizer in optimizers.items():
        try:
            optimizer.load_state_dict(saved[name])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"the state of optimizer {name!r} in {path} does not fit this model/optimizer: {err}") from None
