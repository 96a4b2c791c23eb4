"""Running the ``voxkit`` command inside a test and reading what a user would see."""

from __future__ import annotations

import pytest

from voxkit.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``voxkit ARGS``."""
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    """The error a user mistake prints: exactly one line, never a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``voxkit ARGS`` refuses them with: exit 2, nothing on stdout, no traceback."""
    code, out, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 2 and out == "" and line.startswith(f"voxkit {args[0]}: error: "), err
    return line
