"""Numeric flags checked in the user's words, before any work.

Why: left to the libraries, a count of 0 or -1 surfaces minutes later as a traceback from
``range()``, ``random.sample`` or ``torch.set_num_threads``, or silently slices items off the end
of a list. Every command that takes a count checks it here, the same way.
"""

from __future__ import annotations

import sys

from voxkit.checks import is_whole
from voxkit.errors import VoxkitError

MIN_PORT, MAX_PORT = 1, 65535
"""Ports a server may be asked for. 0 ("any free port") is refused: the demo would then print an
address it cannot know, and the sockets layer raises OverflowError outside 0..65535."""


def at_least(value: int | None, least: int, flag: str, what: str) -> None:
    """Refuse ``value`` below ``least`` (None: the flag was not given), e.g. "--limit takes a number
    of clips of at least 1, got 0"."""
    if value is not None and value < least:
        raise VoxkitError(f"{flag} takes {what} of at least {least}, got {value}")


def check_port(port: object, flag: str = "--port") -> int:
    """``port`` as an int in 1..65535, else one line naming ``flag`` ("--port" on the command line,
    "port" for a Python caller). Shared by ``voxkit demo`` and the demo scripts' own ``main()``."""
    if not is_whole(port) or not MIN_PORT <= port <= MAX_PORT:  # type: ignore[operator]
        raise VoxkitError(f"{flag} must be between {MIN_PORT} and {MAX_PORT}, got {port!r}")
    return int(port)


def read_stdin_text(what: str) -> str:
    """The text piped in (``what`` names it in messages), decoded as UTF-8 whatever the locale says: a file in another encoding is
    a one-line error naming the first bad byte, not a UnicodeDecodeError from inside the reader."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream without bytes beneath (an embedding application's)
        return sys.stdin.read()
    data = buffer.read()
    try:
        return data.decode("utf-8-sig")  # a byte-order mark some editors write is not text to say
    except UnicodeDecodeError as err:  # err.object is what followed the byte-order mark, if there was one
        offset = err.start + len(data) - len(err.object)
        raise VoxkitError(f"the {what} on stdin is not UTF-8: byte 0x{data[offset]:02x} at offset {offset} "
                          "(convert it first, e.g. iconv -f latin1 -t utf-8)") from None


def refuse_sampling_flags_when_greedy(given: list[str]) -> None:
    """Refuse sampling flags (``given``: the ones the user passed) under --temperature 0.

    Why: greedy decoding ignores them, so a --seed would seem to reproduce (or a --top-k to shape)
    a take it had no part in; one message for every command that samples.
    """
    if not given:
        return
    flags = " and ".join([", ".join(given[:-1]), given[-1]] if len(given) > 1 else given)
    raise VoxkitError(f"{flags} {'shape' if len(given) > 1 else 'shapes'} sampling, and --temperature 0 (the default) "
                      f"is greedy: add --temperature (e.g. 0.7) or drop {'them' if len(given) > 1 else 'it'}")


def check_tts_model(model: str | None) -> None:
    """Without --model the bundled TTS folder is used; where this install has none, name the flag.

    Why: the commands that speak (speak, demo tts) are often copied from docs that assume a bundled
    model; the missing flag is the one thing to say, before the text, the outputs or Gradio are seen to.
    """
    from voxkit.tts.api import BUNDLED

    if model is None and not (BUNDLED / "params.json").is_file():
        raise VoxkitError("no bundled TTS model in this install: give --model DIR, a folder written by "
                          "voxkit export tts (docs/tts.md)")
