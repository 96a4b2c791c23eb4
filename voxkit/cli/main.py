"""The ``voxkit`` command: one argparse tree, one module per sub-command.

Each sub-command lives in ``voxkit/cli/<name>.py`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func``. Heavy imports (torch, models) happen inside ``func`` so that
``voxkit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from voxkit.errors import VoxkitError, VoxkitWarning

# Order here is the order shown in ``voxkit --help``.
SUBCOMMANDS: tuple[str, ...] = (
    "transcribe", "chat", "speak", "demo", "codec", "generate", "data", "eval", "train", "export", "selfcheck", "env",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxkit", description="Streaming speech models on one Mistral-style backbone.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"voxkit.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"voxkit.cli.{name}":
                continue  # sub-command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (``voxkit train r.toml --resume train.max_steps=9``),
    # which a plain argparse positional list does not accept.
    if extras and isinstance(getattr(args, "overrides", None), list):
        args.overrides.extend(e for e in extras if "=" in e and not e.startswith("-"))
        extras = [e for e in extras if not ("=" in e and not e.startswith("-"))]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if args.version:
        from voxkit import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with warnings.catch_warnings():  # the command's own warning settings, undone when it returns
            _one_line_warnings(args.command)
            return int(args.func(args) or 0)
    except VoxkitError as err:
        print(f"voxkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): not an error; an OSError, so caught first
        _quiet_stdout()
        return 0
    except OSError as err:
        # The commands check the paths a user names before any work (voxkit.cli.outputs); a path the
        # system still refuses later (a disk that fills, a folder removed meanwhile) is reported
        # the same way. An OSError without a path is not a user's path and keeps its traceback.
        if err.filename is None:
            raise
        print(f"voxkit {args.command}: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line_warnings(command: str) -> None:
    """Print voxkit's own warnings as one line each, like its errors; others keep Python's format.

    Why: Python's format adds the warning's file, line and source line, which tells a user of the
    command nothing and doubles every notice (a truncated file, a take cut short)."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        if issubclass(category, VoxkitWarning):
            print(f"voxkit {command}: warning: {message}", file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", VoxkitWarning)  # each input's notice, even when two inputs earn the same one


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush into the closed pipe does
    not print "Exception ignored ... BrokenPipeError" after the command ended cleanly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture): nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
