"""Which torch device a user asked for, checked before a model loads.

Why: PyTorch reports a missing GPU or a misspelt device name from deep inside the first weight
copy ("Found no NVIDIA driver", "Expected one of cpu, cuda, ..."), after seconds of loading. The
CLI and the Python API ask here first and get one line that names the option and the way out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import torch


def usable_device(name: str | torch.device, flag: str = "--device") -> torch.device:
    """``name`` as a device this machine can compute on; a :class:`VoxkitError` otherwise.

    ``flag`` names the option in the message: ``--device`` (the CLI) or ``device`` (an API argument).
    """
    import torch

    given = f"{flag} {name}" if flag.startswith("-") else f"{flag}={str(name)!r}"
    fallback = f"{flag} cpu" if flag.startswith("-") else f"{flag}='cpu'"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise VoxkitError(f"{given} is not a device name; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VoxkitError(f"{given}: PyTorch sees no CUDA GPU on this machine; use {fallback}")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:160]
        raise VoxkitError(f"{given} is not usable here ({reason}); use {fallback}") from None
    return device
