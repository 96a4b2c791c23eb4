"""The recogniser's per-stream options, validated once where they enter (API, CLI, session).

A delay reaches the recogniser in two units: people give milliseconds (``--delay-ms 480``,
``Transcriber(delay_ms=480)``) and the model counts 80 ms steps (the number of [STREAMING_PAD]
tokens before the text stream, also fed to Ada-RMSNorm). :class:`RecognizerOptions` converts in
one place and checks one set of bounds, so the API, the CLI, the evaluation and the streaming
session cannot disagree about which delays exist.

Bounds: 1..30 steps = 80..2400 ms. That is the range the published model is trained and documented
for (DESIGN §4: "range 1-30"), and the range voxkit's training task draws its random delays from
(the ASR task's ``min_delay``/``max_delay`` default to these bounds and may not leave them). The
delay conditioning of a longer delay is a value the model never saw in training, so such a request
is refused rather than answered with an untrained extrapolation.
"""

from __future__ import annotations

import dataclasses
import operator

from voxkit.audio.constants import STEP_MS
from voxkit.errors import OptionError

MIN_DELAY_STEPS = 1
MAX_DELAY_STEPS = 30
MIN_DELAY_MS = MIN_DELAY_STEPS * STEP_MS  # 80
MAX_DELAY_MS = MAX_DELAY_STEPS * STEP_MS  # 2400
DELAY_RANGE_TEXT = f"a multiple of {STEP_MS} ms between {MIN_DELAY_MS} and {MAX_DELAY_MS} ms"


def _whole(value: object, unit: str) -> int:
    """``value`` as an int (numpy integers too); bools and fractions are a user mistake."""
    if isinstance(value, bool):
        raise OptionError(f"delay must be {DELAY_RANGE_TEXT}, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise OptionError(f"delay must be {DELAY_RANGE_TEXT}, got {value!r} {unit}")


@dataclasses.dataclass(frozen=True)
class RecognizerOptions:
    """How one stream is transcribed; today the delay, in whole 80 ms steps.

    Build it with :meth:`from_ms` (user input), :meth:`from_steps` (model and recipe values) or
    :meth:`for_model` (a user value or the model's own default). Construction validates, so an
    instance always holds a delay the model was trained for.
    """

    delay_steps: int

    def __post_init__(self) -> None:
        steps = _whole(self.delay_steps, "steps")
        if not MIN_DELAY_STEPS <= steps <= MAX_DELAY_STEPS:
            raise OptionError(f"delay must be {DELAY_RANGE_TEXT}, got {steps * STEP_MS} ms ({steps} steps of {STEP_MS} ms)")
        object.__setattr__(self, "delay_steps", steps)

    @classmethod
    def from_ms(cls, delay_ms: int) -> RecognizerOptions:
        """Options for a delay in milliseconds (a multiple of the 80 ms step)."""
        ms = _whole(delay_ms, "ms")
        if ms % STEP_MS:
            raise OptionError(f"delay must be {DELAY_RANGE_TEXT}, got {ms} ms")
        return cls(ms // STEP_MS)

    @classmethod
    def from_steps(cls, delay_steps: int) -> RecognizerOptions:
        """Options for a delay in 80 ms steps (e.g. a model's ``default_delay_tokens``)."""
        return cls(delay_steps)

    @classmethod
    def for_model(cls, default_delay_steps: int, delay_ms: int | None = None) -> RecognizerOptions:
        """``delay_ms`` when the user gave one, else the model's default delay (in steps)."""
        return cls.from_steps(default_delay_steps) if delay_ms is None else cls.from_ms(delay_ms)

    @property
    def delay_ms(self) -> int:
        return self.delay_steps * STEP_MS

    @property
    def delay_seconds(self) -> float:
        return self.delay_ms / 1000
