"""Safetensors checkpoint folders: mistral-native and Hugging Face layouts, and voxkit's training checkpoints.

Native: ``params.json`` + ``consolidated.safetensors`` (or ``consolidated-*.safetensors`` shards).
HF: ``config.json`` + ``model.safetensors`` or shards listed by ``model.safetensors.index.json``.
Training: ``config.json`` (the model's own params, not a transformers config) + ``model.safetensors``
(voxkit's module keys, training-only heads included) + ``train_state.pt`` + ``recipe.json``, as
written by ``voxkit train``. It shares file names with the HF layout, so its ``config.json`` says
what it is (:data:`CHECKPOINT_MARKER`); older ones are recognised by their train state, or by a
params-style config (no ``model_type``, which every transformers config has) for averaged and
grown folders. Loaders load a training checkpoint where they can, or name the export command.
Only safetensors are read: pickle files (``.bin``, ``.pt``, ...) can run code when loaded, so a
folder that offers nothing else is refused with an explanation instead of being unpickled.
Models are built on the meta device and receive the loaded tensors with ``assign=True``; every
mismatch (missing, unexpected, mis-shaped key) is reported by name before anything is assigned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch
from torch import nn

from voxkit.errors import CheckpointError
from voxkit.fileio import atomic_write

if TYPE_CHECKING:
    from voxkit.tokenizer import Tokenizer

Layout = Literal["native", "hf", "training"]
M = TypeVar("M", bound=nn.Module)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
NATIVE_PARAMS = "params.json"
NATIVE_WEIGHTS = "consolidated.safetensors"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
TRAINING_STATE = "train_state.pt"
TRAINING_RECIPE = "recipe.json"
CHECKPOINT_MARKER = "voxkit_checkpoint"  # config.json key: {"kind": "training", "model": <recipe model name>}


def mark_training_config(config: dict[str, Any], model: str | None) -> dict[str, Any]:
    """``config`` plus the marker that makes a folder a training checkpoint of ``model`` (a recipe model name)."""
    return {**config, CHECKPOINT_MARKER: {"kind": "training", "model": model}}


def _peek_json(file: Path) -> dict[str, Any]:
    """A JSON object, or {} when the file is unreadable (detection only: :func:`read_config` reports errors)."""
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_training(path: Path, names: set[str]) -> bool:
    if TRAINING_STATE in names:
        return True
    config = _peek_json(path / HF_CONFIG)
    marker = config.get(CHECKPOINT_MARKER)
    if isinstance(marker, dict) and marker.get("kind") == "training":
        return True
    return "model_type" not in config and {"dim", "n_layers"} <= config.keys()


def detect_layout(folder: str | os.PathLike[str]) -> Layout:
    """Which layout a folder holds; raises CheckpointError naming what is missing or unsafe."""
    path = Path(folder)
    if not path.exists():
        raise CheckpointError(f"model folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is not a folder (expected params.json + consolidated.safetensors)")
    names = {p.name for p in path.iterdir()}
    has_st = any(n.endswith(".safetensors") for n in names)
    has_native_weights = any(n.startswith("consolidated") and n.endswith(".safetensors") for n in names)
    # Published repositories often hold both layouts side by side; params.json only decides when its
    # own weights are there too, else a folder with transformers' weights and config is transformers'.
    if NATIVE_PARAMS in names and has_st and (has_native_weights or HF_CONFIG not in names):
        return "native"
    if HF_CONFIG in names and has_st:
        return "training" if _is_training(path, names) else "hf"
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles and not has_st:
        raise CheckpointError(
            f"{str(path)!r} holds only pickle weights ({', '.join(pickles)}); voxkit never unpickles files "
            "because that can execute code. Convert them to safetensors first."
        )
    if has_st and TRAINING_STATE in names:
        raise CheckpointError(
            f"{str(path)!r} is a training checkpoint whose model records no config.json: resume it with voxkit train, "
            "it cannot be loaded as a model folder"
        )
    if has_st:
        raise CheckpointError(f"{str(path)!r} has safetensors weights but neither params.json nor config.json")
    if NATIVE_PARAMS in names or HF_CONFIG in names:
        raise CheckpointError(f"{str(path)!r} has a config but no .safetensors weights")
    raise CheckpointError(f"{str(path)!r} is not a model folder: expected params.json + consolidated.safetensors")


def read_config(folder: str | os.PathLike[str], layout: Layout) -> dict[str, Any]:
    """The folder's model config; a training checkpoint's without the :data:`CHECKPOINT_MARKER`."""
    name = NATIVE_PARAMS if layout == "native" else HF_CONFIG
    file = Path(folder) / name
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{file} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} must hold a JSON object")
    if layout == "training":
        data.pop(CHECKPOINT_MARKER, None)
    return data


def training_recipe(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The resolved recipe a training checkpoint was written with (``recipe.json``), if it has one."""
    file = Path(folder) / TRAINING_RECIPE
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{file} is not readable JSON: {err}") from None
    return data if isinstance(data, dict) else None


def training_model(folder: str | os.PathLike[str]) -> str | None:
    """The recipe model name (e.g. "realtime_recognizer") of a training checkpoint, when it records one."""
    marker = _peek_json(Path(folder) / HF_CONFIG).get(CHECKPOINT_MARKER)
    if isinstance(marker, dict) and isinstance(marker.get("model"), str):
        return marker["model"]
    model = ((training_recipe(folder) or {}).get("model") or {}).get("name")
    return model if isinstance(model, str) else None


def check_training_model(folder: str | os.PathLike[str], expected: str, what: str) -> None:
    """Refuse a training checkpoint whose recipe trained another model (``what``: "a codec", ...)."""
    model = training_model(folder)
    if model not in (None, expected):
        raise CheckpointError(f"{folder} is a training checkpoint of a {model!r} model, not of {what} ({expected})")


def recorded_tokenizer_spec(folder: str | os.PathLike[str]) -> str | None:
    """The recipe's ``data.tokenizer`` of a training checkpoint ("byte", "tekken" or a folder); None without a recipe."""
    recipe = training_recipe(folder)
    if recipe is None:
        return None
    spec = (recipe.get("data") or {}).get("tokenizer", "tekken")  # the trainer's default
    return spec if isinstance(spec, str) else None


def tokenizer_from_spec(spec: str) -> Tokenizer:
    """A recipe's ``data.tokenizer``: "byte", "tekken" (the shipped Tekken) or a model/tokenizer folder."""
    from voxkit.subset_tokenizer import load_folder_tokenizer
    from voxkit.tokenizer import ByteTokenizer, TekkenTokenizer

    if spec == "byte":
        return ByteTokenizer()
    if spec == "tekken":
        return TekkenTokenizer.shipped()
    return load_folder_tokenizer(spec)


def recorded_tokenizer(folder: str | os.PathLike[str]) -> Tokenizer | None:
    """The tokenizer the training run of checkpoint ``folder`` used, or None when it cannot be found.

    A tokenizer folder in the recipe is relative to where training ran (:func:`recorded_folder`),
    so an export works from any working directory.
    """
    spec = recorded_tokenizer_spec(folder)
    if spec is None:
        return None
    if spec in ("byte", "tekken"):
        return tokenizer_from_spec(spec)
    found = recorded_folder(folder, spec)
    return None if found is None else tokenizer_from_spec(str(found))


def recorded_folder(checkpoint: str | os.PathLike[str], spec: str | os.PathLike[str]) -> Path | None:
    """The folder that a path in checkpoint ``checkpoint``'s recipe named, or None when none exists from here.

    Recipes name folders (a tokenizer, a codec) relative to the directory training ran in, and
    the trainer records them as written, so the same spec means another folder when read from
    elsewhere. See :func:`recorded_folder_candidates` for where it is looked for.
    """
    for candidate in recorded_folder_candidates(checkpoint, spec):
        if candidate.is_dir():
            return candidate
    return None


def recorded_folder_candidates(checkpoint: str | os.PathLike[str], spec: str | os.PathLike[str]) -> list[Path]:
    """Where a relative ``spec`` from a training checkpoint's recipe may lie, the likeliest first.

    Where training ran is recovered from the checkpoint's own path: ``<cwd>/<train.out_dir>/
    checkpoints/step_N`` gives ``<cwd>`` when its tail matches the recipe's relative out_dir. The
    current directory comes after it, for runs whose folder was moved or has another shape. An
    absolute spec is its own only candidate.
    """
    spec = Path(spec)
    if spec.is_absolute():
        return [spec]
    candidates: list[Path] = []
    out_dir = Path(str(((training_recipe(checkpoint) or {}).get("train") or {}).get("out_dir", "")))
    run = Path(checkpoint).resolve().parent.parent  # <cwd>/<out_dir> for <out_dir>/checkpoints/step_N
    depth = len(out_dir.parts)
    if out_dir.parts and not out_dir.is_absolute() and run.parts[-depth:] == out_dir.parts:
        candidates.append(Path(*run.parts[:-depth]) / spec)
    candidates.append(spec)
    return candidates


def _read_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` of a sharded folder's index (tensor name -> shard file), checked for shape."""
    file = path / HF_INDEX
    try:
        with open(file, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{file} is not readable JSON: {err}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{file} has no weight_map (an object naming the shard of every tensor)")
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise CheckpointError(f"{file}: the shard of {key} is {shard!r}, not a file name")
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise CheckpointError(f"{file}: shard {shard!r} of {key} lies outside the model folder")
    return weight_map


def _check_index(path: Path, weight_map: dict[str, str]) -> None:
    """Every tensor the index lists must be in the shard it names (headers only, no weights are read).

    Why: an index that disagrees with its shards means an interrupted download or a hand-edited
    folder; loading whatever the shards hold would hide it, or report a tensor as missing without
    saying that the index promised it.
    """
    from safetensors import SafetensorError, safe_open

    wanted: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        wanted.setdefault(shard, []).append(key)
    for shard, keys in sorted(wanted.items()):
        try:
            with safe_open(str(path / shard), framework="pt") as fh:
                held = set(fh.keys())
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {path / shard}: {err}") from None
        absent = sorted(set(keys) - held)
        if absent:
            more = f" (+{len(absent) - 5} more)" if len(absent) > 5 else ""
            raise CheckpointError(
                f"{path / HF_INDEX} places {', '.join(absent[:5])}{more} in {shard}, which does not hold "
                f"{'it' if len(absent) == 1 else 'them'} (an incomplete download or a stale index)"
            )


def weight_files(folder: str | os.PathLike[str], layout: Layout) -> list[Path]:
    """The safetensors files holding a folder's weights; a sharded folder's index is checked against its shards."""
    path = Path(folder)
    if layout == "hf" and (path / HF_INDEX).exists():
        weight_map = _read_index(path)
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise CheckpointError(f"{path / HF_INDEX} lists shards that are missing: {', '.join(missing)}")
        _check_index(path, weight_map)
        return [path / f for f in files]
    if layout in ("hf", "training") and (path / HF_WEIGHTS).exists():
        return [path / HF_WEIGHTS]
    if layout == "native":
        if (path / NATIVE_WEIGHTS).exists():
            return [path / NATIVE_WEIGHTS]
        shards = sorted(path.glob("consolidated*.safetensors"))
        if shards:
            return shards
    found = sorted(p.name for p in path.glob("*.safetensors"))
    if found:
        return [path / n for n in found]
    pickles = sorted(p.name for p in path.iterdir() if p.name.endswith(PICKLE_SUFFIXES)) if path.is_dir() else []
    if pickles:
        raise CheckpointError(f"{path} holds only pickle weights ({', '.join(pickles)}); voxkit never unpickles files "
                              "because that can execute code. Convert them to safetensors first.")
    raise CheckpointError(f"no safetensors weights in {path}")


def read_tensors(files: Iterable[Path], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            part = load_file(str(file), device=str(device))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {file}: {err}") from None
        overlap = tensors.keys() & part.keys()
        if overlap:
            raise CheckpointError(f"{file} repeats tensors already loaded: {sorted(overlap)[:5]}")
        tensors.update(part)
    return tensors


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")

    atomic_write(path, write)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared or non-contiguous storage (tied weights, views): store copies.
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=metadata or {"format": "pt"}))


def write_folder(
    folder: str | os.PathLike[str],
    layout: Layout,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    max_shard_bytes: int | None = None,
    *,
    model: str | None = None,
) -> Path:
    """Write a checkpoint folder in ``layout``; HF weights are sharded above ``max_shard_bytes``.

    ``training``: weights and the marked config only (``model`` is the recipe model name it records);
    the trainer itself writes full checkpoints with their train state.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    if layout == "native":
        write_safetensors(path / NATIVE_WEIGHTS, tensors)
        write_json(path / NATIVE_PARAMS, config)
        return path
    if layout == "training":
        write_safetensors(path / HF_WEIGHTS, tensors)
        write_json(path / HF_CONFIG, mark_training_config(config, model))
        return path
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if max_shard_bytes and size and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensors[key]
        size += nbytes
    if len(shards) == 1:
        write_safetensors(path / HF_WEIGHTS, shards[0])
    else:
        weight_map: dict[str, str] = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(path / name, shard)
            weight_map.update({k: name for k in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        write_json(path / HF_INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(path / HF_CONFIG, config)
    return path


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Raise CheckpointError listing every missing, unexpected and mis-shaped key."""
    check_shapes({k: tuple(v.shape) for k, v in module.state_dict().items()}, state, where)


def check_shapes(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Raise CheckpointError listing every key of ``state`` missing from, foreign to or mis-shaped for ``expected``.

    A loader calls it with the names its user knows (transformers' names for a transformers folder)
    before converting anything, so the report speaks of the keys the folder actually holds.
    """
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k])}"
        for k in expected.keys() & state.keys()
        if tuple(state[k].shape) != tuple(expected[k])
    )
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshaped)):
        if items:
            shown = ", ".join(items[:8]) + (f" (+{len(items) - 8} more)" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{where} does not fit the model: " + "; ".join(problems))


def assign_state_dict(module: nn.Module, state: dict[str, torch.Tensor], device: torch.device, where: str) -> None:
    """Strictly load into a (meta-device) module, then rebuild non-persistent buffers on ``device``."""
    check_state_dict(module, state, where)
    module.load_state_dict(state, strict=True, assign=True)
    for sub in module.modules():
        init = getattr(sub, "init_buffers", None)
        if callable(init):
            init(device)


def build_and_load(
    factory: Callable[[], M],
    state: dict[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    where: str = "checkpoint",
) -> M:
    """Build ``factory()`` on the meta device and give it ``state`` (cast to ``dtype`` if set).

    No memory is spent on a random initialisation that the checkpoint would overwrite anyway.
    """
    device = torch.device(device)
    state = {
        k: v.to(device=device, dtype=dtype if dtype is not None and v.is_floating_point() else v.dtype)
        for k, v in state.items()
    }
    with torch.device("meta"):
        module = factory()
    assign_state_dict(module, state, device, where)
    return module.eval()


def average_folders(folders: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Write the element-wise mean of several checkpoints of one model to ``out``.

    Averaging the last few checkpoints of a run smooths the noise of small-batch updates (as in
    fairseq's ``average_checkpoints``). Sums are taken in float64 and cast back to each tensor's
    dtype; integer tensors must agree and are copied, except a counter (an integer scalar, such as
    the codec's count of generator updates, which drives its loss schedule), which takes the largest
    value, that of the latest checkpoint. The first folder's layout and config are
    kept, and its other JSON files (a training ``recipe.json``) are copied so that the result
    exports and fine-tunes like any checkpoint of the run (a training checkpoint stays one, marked
    with its model); optimizer state is not averaged.
    """
    paths = [Path(f) for f in folders]
    if not paths:
        raise CheckpointError("average_folders needs at least one checkpoint folder")
    layout = detect_layout(paths[0])
    config = read_config(paths[0], layout)
    total: dict[str, torch.Tensor] = {}
    first: dict[str, torch.Tensor] = {}
    for path in paths:
        if detect_layout(path) != layout or read_config(path, layout) != config:
            raise CheckpointError(f"{path} is not the same model as {paths[0]} (layout or config differs)")
        tensors = read_tensors(weight_files(path, layout))
        if not first:
            first = tensors
            total = {k: v.double() if v.is_floating_point() else v for k, v in tensors.items()}
            continue
        if tensors.keys() != first.keys():
            odd = sorted(tensors.keys() ^ first.keys())
            raise CheckpointError(f"{path} has other tensors than {paths[0]}: {', '.join(odd[:8])}")
        for key, value in tensors.items():
            if value.shape != first[key].shape:
                raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, {paths[0]} has {tuple(first[key].shape)}")
            if value.is_floating_point():
                total[key] += value.double()
            elif value.dim() == 0 and value.dtype != torch.bool:  # a counter: the latest checkpoint's
                total[key] = torch.maximum(total[key], value)
            elif not torch.equal(value, first[key]):
                raise CheckpointError(f"{path}: integer tensor {key} differs from {paths[0]}")
    mean = {k: (v / len(paths)).to(first[k].dtype) if first[k].is_floating_point() else v for k, v in total.items()}
    target = write_folder(out, layout, config, mean, model=training_model(paths[0]) if layout == "training" else None)
    own = {NATIVE_PARAMS, HF_CONFIG, HF_INDEX}
    for extra in sorted(paths[0].glob("*.json")):
        if extra.name not in own:
            with open(extra, encoding="utf-8") as fh:
                write_json(target / extra.name, json.load(fh))
    return target
