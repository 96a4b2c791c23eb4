"""``voxkit train RECIPE.toml [section.key=value ...] [--resume]``: train from a recipe.

The same command runs on one CPU, one GPU, or many processes under
``torchrun --nproc-per-node=N -m voxkit.cli.main train ...``; the trainer reads torchrun's
environment itself. Models and tasks come from the registry (voxkit.train.registry), found by the
names in the recipe, so this file knows nothing about any particular model and ``--help`` imports
none.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a recipe (TOML), on one device or under torchrun",
        description="Train from a TOML recipe. Overrides: section.key=value (e.g. train.max_steps=200 "
        "optim.lr=3e-4 tasks.asr.max_delay=30), typed by the key they set; +tasks.NAME.key=value adds a task. "
        "Every key is checked: a typo stops the run and names the closest known key.",
    )
    p.add_argument("recipe", help="recipe file (.toml, or a run's recipe.json)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, applied in order")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.out_dir")
    p.add_argument(
        "--stop-at", type=int, default=None, metavar="STEP",
        help="checkpoint and stop after this step (the schedule still spans train.max_steps)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; under torchrun a user's mistake or a Ctrl-C is reported by one process per machine.

    Why: every process reads the same recipe and manifests, so each one finds the same mistake, and
    eight copies of one line (one per GPU) bury it. The first process of each machine
    (``LOCAL_RANK`` 0) prints it as usual; the others exit with the same status in silence. A
    machine of its own still speaks: a manifest missing on one node is reported by that node.
    Once training runs, the ranks read different shards and an error may be one rank's alone:
    every rank then says its own, prefixed with its rank, unless the ranks agreed on it
    (``every_rank`` on the error, as the trainer's collective checks raise it).
    """
    from voxkit.errors import VoxkitError

    args.training_started = False
    try:
        return _run(args)
    except VoxkitError as err:
        if (not args.training_started or getattr(err, "every_rank", False)) and _quiet_process():
            return 2
        if args.training_started and not getattr(err, "every_rank", False) and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise type(err)(f"[rank {os.environ.get('RANK', '0')}] {err}") from None
        raise
    except OSError as err:
        if not args.training_started and err.filename is not None and _quiet_process():  # printed by the first process
            return 2
        raise
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal alike
        if _quiet_process():
            return 130
        raise


def _quiet_process() -> bool:
    """Whether this is a torchrun process other than its machine's first."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def _run(args: argparse.Namespace) -> int:
    from voxkit.cli.flags import at_least
    from voxkit.cli.outputs import output_folder
    from voxkit.errors import VoxkitError
    from voxkit.train.recipe import load_recipe

    at_least(args.stop_at, 1, "--stop-at", "a step")
    recipe = load_recipe(args.recipe, args.overrides)  # every key checked before anything is built
    if not recipe.tasks:  # before a model of the default (full) size is built for nothing
        raise VoxkitError(f"{args.recipe}: the recipe has no [tasks.NAME] section: nothing to train (e.g. [tasks.asr] with train = [...])")
    output_folder(recipe.train.out_dir, "train.out_dir", make=False)
    _check_resume(recipe.train.out_dir, args.resume)

    import torch

    from voxkit.train.registry import build_model, build_tasks
    from voxkit.train.trainer import Trainer

    torch.manual_seed(recipe.train.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(recipe.model)
    tasks = build_tasks(recipe, model)
    if int(os.environ.get("RANK", "0")) == 0:
        n_params = sum(p.numel() for p in model.parameters())
        mixture = ", ".join(f"{n} ({w:g})" for n, w in recipe.task_weights().items())
        summary = f"model {recipe.model['name']}: {n_params / 1e6:.2f} M parameters; tasks: {mixture}; out_dir {recipe.train.out_dir}"
        print(summary, file=sys.stderr)
    trainer = Trainer(recipe, model, tasks, recipe.task_weights())
    args.training_started = True  # from here the ranks read different shards (see run)
    scalars = trainer.fit(resume=args.resume, stop_at=args.stop_at)
    if int(os.environ.get("RANK", "0")) == 0 and scalars:
        print(" ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items())))
    return 0


def _check_resume(out_dir: str, resume: bool) -> None:
    """Refuse a fresh run into a folder that holds checkpoints now, before the model and the data are built.

    Why: building a full-size model and reading the manifests takes a while, and the trainer would
    refuse the same folder only afterwards (it keeps the check, for callers of ``Trainer.fit``).
    """
    from voxkit.errors import VoxkitError
    from voxkit.train.checkpointing import latest_checkpoint

    if not resume and latest_checkpoint(out_dir) is not None:
        raise VoxkitError(f"{out_dir} already holds checkpoints: resume with --resume, or choose another train.out_dir")
