"""The recogniser's delay: one conversion between ms and 80 ms steps, one set of bounds, messages in ms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voxkit.asr.options import MAX_DELAY_MS, MAX_DELAY_STEPS, MIN_DELAY_MS, MIN_DELAY_STEPS, RecognizerOptions
from voxkit.audio.constants import STEP_MS
from voxkit.errors import VoxkitError


def test_ms_and_steps_convert_in_both_directions() -> None:
    options = RecognizerOptions.from_ms(480)
    assert options.delay_steps == 6 and options.delay_ms == 480 and options.delay_seconds == pytest.approx(0.48)
    assert RecognizerOptions.from_steps(6) == options
    for steps in range(MIN_DELAY_STEPS, MAX_DELAY_STEPS + 1):
        assert RecognizerOptions.from_ms(RecognizerOptions.from_steps(steps).delay_ms).delay_steps == steps


def test_bounds_are_80_to_2400_ms() -> None:
    assert (MIN_DELAY_MS, MAX_DELAY_MS, STEP_MS) == (80, 2400, 80)
    assert RecognizerOptions.from_ms(80).delay_steps == 1
    assert RecognizerOptions.from_ms(2400).delay_steps == 30


def test_bounds_match_the_delays_training_draws() -> None:
    """A model trained with the task's default delays has seen every delay the options accept, and no other."""
    from voxkit.asr.task import AsrTaskConfig

    defaults = AsrTaskConfig(train=[])
    assert (defaults.min_delay, defaults.max_delay) == (MIN_DELAY_STEPS, MAX_DELAY_STEPS)


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda: RecognizerOptions.from_ms(0), "got 0 ms"),
        (lambda: RecognizerOptions.from_ms(-80), "got -80 ms"),
        (lambda: RecognizerOptions.from_ms(100), "got 100 ms"),
        (lambda: RecognizerOptions.from_ms(2480), "got 2480 ms"),
        (lambda: RecognizerOptions.from_steps(0), "got 0 ms"),
        (lambda: RecognizerOptions.from_steps(31), "got 2480 ms (31 steps"),
        (lambda: RecognizerOptions.from_steps(60), "got 4800 ms"),
        (lambda: RecognizerOptions.from_ms(480.5), "got 480.5 ms"),  # type: ignore[arg-type]
        (lambda: RecognizerOptions.from_ms(True), "got True"),  # type: ignore[arg-type]
        (lambda: RecognizerOptions.from_ms("480"), "got '480' ms"),  # type: ignore[arg-type]
    ],
)
def test_bad_delays_raise_one_user_error_in_ms(make: object, shown: str) -> None:
    with pytest.raises(VoxkitError) as err:
        make()  # type: ignore[operator]
    message = str(err.value)
    assert message.startswith("delay must be a multiple of 80 ms between 80 and 2400 ms, got ")
    assert shown in message and "\n" not in message


def test_integer_like_values_are_accepted() -> None:
    assert RecognizerOptions.from_ms(np.int64(960)).delay_steps == 12  # type: ignore[arg-type]
    assert RecognizerOptions.from_ms(960.0).delay_steps == 12  # type: ignore[arg-type]
    assert type(RecognizerOptions.from_ms(np.int64(960)).delay_steps) is int  # type: ignore[arg-type]


def test_model_default_or_user_value() -> None:
    assert RecognizerOptions.for_model(6).delay_ms == 480
    assert RecognizerOptions.for_model(6, 960).delay_steps == 12
    with pytest.raises(VoxkitError):
        RecognizerOptions.for_model(6, 4000)


def test_options_are_frozen() -> None:
    options = RecognizerOptions.from_ms(480)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.delay_steps = 7  # type: ignore[misc]
