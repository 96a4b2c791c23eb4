"""Checks of the options every API takes (counts, sizes, thread numbers, weight dtypes), in one place.

Why shared: the same option reads the same way in every API. numpy integers (what array
arithmetic and ``np.random`` hand back) are as good a count as Python ints; ``bool`` is an int
subclass never meant as a count; a float is refused rather than truncated.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from voxkit.errors import OptionError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "float16", "bfloat16")
"""The weight precisions a model may be loaded in, by name (``"auto"``: each weight as stored)."""


def is_number(value: object) -> bool:
    """A Python or numpy real number (int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value: object) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(value: object, name: str, least: int) -> int:
    """``value`` as an int of at least ``least``, else an :class:`OptionError` naming ``name``."""
    if not is_whole(value) or value < least:  # type: ignore[operator]
        raise OptionError(f"{name} must be a whole number of at least {least}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def flag(value: object, name: str) -> bool:
    """``value`` as a switch: True or False (numpy's too), anything else refused. Why: a string
    such as "no" is truthy, so ``boost="no"`` switched the boost on without a word."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise OptionError(f"{name} must be True or False, got {value!r}")


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8 (None when it can), as the end of a one-line message.

    Why check: a lone surrogate (what Python makes of the undecodable bytes of a command-line
    argument or a file read in another encoding) reaches the tokenizer's ``encode`` as a
    UnicodeEncodeError from deep inside; the client needs to know which character, and where."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        byte = f", the undecodable byte 0x{code - 0xDC00:02x} (is the text in another encoding?)" if 0xDC80 <= code <= 0xDCFF else ""
        return f"is not valid Unicode: character {err.start + 1} is the lone surrogate U+{code:04X}{byte}"
    return None


def weight_dtype(value: object, name: str = "dtype") -> torch.dtype | None:
    """``value`` as a floating torch dtype for weights (None: as stored), else an :class:`OptionError`.

    Why: transformers users write ``torch_dtype="float16"`` or ``"auto"``; a string or an integer
    dtype reached ``Module.to`` or the state-dict copy and failed there with a page of overloads.
    """
    import torch

    if value is None or value == "auto":
        return None
    if isinstance(value, str) and value in DTYPE_NAMES:
        return getattr(torch, value)
    if isinstance(value, torch.dtype) and value.is_floating_point:
        return value
    raise OptionError(f"{name} must be a floating torch dtype (torch.float32, torch.float16, torch.bfloat16), "
                      f"one of {', '.join(map(repr, DTYPE_NAMES))} or 'auto' (as stored), got {value!r}")
