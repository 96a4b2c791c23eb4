"""User-facing error types.

Anything a user can cause (a bad file, a malformed checkpoint folder, a wrong flag value) raises a
subclass of :class:`VoxkitError`; the CLI prints its message and exits with status 2 instead of a
traceback. Programming errors keep raising the usual built-in exceptions.
"""


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


class OptionError(VoxkitError, ValueError):
    """A parameter outside its range (a temperature, a seed, a step count). Also a ValueError, so
    library callers that catch ValueError keep working; the CLI prints it as one line."""
