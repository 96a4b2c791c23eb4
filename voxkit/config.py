"""Args dataclasses that round-trip through JSON (mistral-native ``params.json``).

Published ``params.json`` files carry keys that a given voxkit version may not model (tokenizer
hints, quantisation notes, future fields). Dropping them would make save(load(x)) lossy, so every
args class keeps unknown keys in ``extra`` and writes them back verbatim.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonArgs")


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass inside ``X``, ``X | None`` or ``Optional[X]`` annotations, else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation  # type: ignore[return-value]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg  # type: ignore[return-value]
    return None


@dataclasses.dataclass
class JsonArgs:
    """Base for args dataclasses; subclasses are plain dataclasses with defaults."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                extra[key] = value
                continue
            sub = _dataclass_type(hints[key])
            if sub is not None and isinstance(value, dict):
                value = sub.from_dict(value) if issubclass(sub, JsonArgs) else sub(**value)
            kwargs[key] = value
        obj = cls(**kwargs)
        obj.extra = extra
        return obj

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, JsonArgs):
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)  # type: ignore[arg-type]
            if value is None:
                continue  # absent optional sections stay absent, as in published files
            out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def load_json(cls: type[T], path: str | os.PathLike[str]) -> T:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def save_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=False)
            fh.write("\n")
