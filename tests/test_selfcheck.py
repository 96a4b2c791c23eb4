"""`voxkit selfcheck`: every parity and streaming check passes, and the stream takes the fused step where it can."""

from __future__ import annotations

import pytest

from cpu_kernel_helpers import CAN_BUILD
from voxkit.cli.main import main


def test_selfcheck_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selfcheck"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "all checks passed" in out
    assert ("Recogniser (fused C step)" in out) == CAN_BUILD


def test_selfcheck_with_the_kernels_off(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    assert main(["selfcheck"]) == 0
    assert "Recogniser (PyTorch modules)" in capsys.readouterr().out
