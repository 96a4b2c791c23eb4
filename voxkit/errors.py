"""User-facing error types.

Anything a user can cause (a bad file, a malformed checkpoint folder, a wrong flag value) raises a
subclass of :class:`VoxkitError`; the CLI prints its message and exits with status 2 instead of a
traceback. Programming errors keep raising the usual built-in exceptions.
"""


import sys
import warnings
from pathlib import Path


class VoxkitError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class CheckpointError(VoxkitError):
    """A checkpoint folder is missing files, has unsafe files, or does not fit the model."""


class AudioError(VoxkitError):
    """Audio input is empty, undecodable, non-finite or otherwise unusable."""


class DataError(VoxkitError):
    """A manifest or corpus is malformed."""


class VoxkitWarning(UserWarning):
    """Something a user should know that does not stop the work (a truncated file, a take cut short).
    A UserWarning for library callers; the CLI prints it as one line (``voxkit CMD: warning: ...``)."""


def _is_voxkit_file(filename: str) -> bool:
    """Whether ``filename`` is one of voxkit's own modules (voxkit/, and lm/, asr/, codec/, tts/,
    which install as voxkit.lm, voxkit.asr, ...)."""
    roots = [Path(m.__file__).parent for name, m in list(sys.modules.items())
             if (name == "voxkit" or name.startswith("voxkit.")) and name.count(".") <= 1 and getattr(m, "__file__", None)]
    return any(Path(filename).is_relative_to(root) for root in roots)


def warn(message: str) -> None:
    """Issue ``message`` as a :class:`VoxkitWarning` attributed to the first caller outside voxkit.

    Why: Python prints a warning with the file and line it is attributed to; a fixed
    ``stacklevel`` pointed at voxkit's own loader (voxkit/audio/io.py) whenever the call came
    through a few more layers, where the user's line that passed the audio is what helps. Where
    every frame is voxkit's (the command line), the warning is attributed to its direct caller.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and _is_voxkit_file(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, VoxkitWarning, stacklevel=level + 1 if frame is not None else 2)


class OptionError(VoxkitError, ValueError):
    """A parameter outside its range (a temperature, a seed, a step count). Also a ValueError, so
    library callers that catch ValueError keep working; the CLI prints it as one line."""
