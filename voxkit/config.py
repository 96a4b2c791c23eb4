"""Args dataclasses from dicts: lenient for published ``params.json``, strict for recipes.

Published ``params.json`` files carry keys that a given voxkit version may not model (tokenizer
hints, quantisation notes, future fields). Dropping them would make save(load(x)) lossy, so every
args class keeps unknown keys in ``extra`` and writes them back verbatim (:meth:`JsonArgs.from_dict`).

A table a person writes (a training recipe, a command-line override) is the opposite case: an
unknown key there is a typo that would otherwise be silently ignored (``n_layer = 2`` building the
default 32 layers). :func:`strict_from_dict` therefore rejects unknown keys, naming the closest
known one, checks every value against the field's annotation, and takes every default from the
dataclass itself, so the dataclass is the one place that holds them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from voxkit.errors import VoxkitError

T = TypeVar("T", bound="JsonArgs")
D = TypeVar("D")


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


# ---------------------------------------------------------------------------- strict tables


class ConfigError(VoxkitError):
    """A hand-written table has an unknown key, a missing key or a value of the wrong type.

    ``path`` is the key path of the offending entry from the root of the conversion (e.g.
    ``("model", "decoder", "n_layer")``), so a caller can say where the entry came from (a file,
    a command-line override).
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class RawValue(str):
    """Text from a command line, parsed by the type of the field it is assigned to.

    ``train.max_steps=200`` becomes the integer 200 and ``data.tokenizer=200`` the string "200":
    only the field knows, so parsing waits until the value meets its annotation.
    """


def closest(word: str, known: Collection[str]) -> str | None:
    """The known name that ``word`` most probably misspells, or None."""
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_error(key: str, known: Collection[str], path: tuple[str, ...]) -> ConfigError:
    """The error for ``key`` in the table at ``path``, suggesting the closest of ``known``."""
    where = f" in [{'.'.join(path)}]" if path else ""
    guess = closest(key, known)
    hint = f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(sorted(known)) or 'none'}"
    return ConfigError(f"unknown key {key!r}{where}; {hint}", (*path, key))


def table_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` a table may set (not JsonArgs' ``extra``, not init=False ones)."""
    skip = {"extra"} if issubclass(cls, JsonArgs) else set()
    return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in skip}


def check_table(cls: type, table: Mapping[str, Any], path: tuple[str, ...] = (), ignore: Collection[str] = ()) -> dict[str, Any]:
    """``table`` with every value checked and converted to its field's type (sub-tables stay dicts).

    Keys in ``ignore`` belong to someone else (e.g. the trainer's ``weight`` of a task section): they
    are passed through untouched but count as known when a typo is matched to a suggestion.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{'.'.join(path)}] must be a table, got {table!r}", path)
    fields = table_fields(cls)
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in ignore:
            out[key] = value
        elif key in fields:
            out[key] = _convert(value, hints[key], (*path, key))
        else:
            raise unknown_key_error(key, [*fields, *ignore], path)
    return out


def strict_from_dict(cls: type[D], table: Mapping[str, Any], path: tuple[str, ...] = (), base: D | None = None) -> D:
    """An instance of dataclass ``cls`` from a hand-written table; unknown keys are errors.

    Keys the table lacks keep ``base``'s values when given, else the dataclass defaults. A
    sub-table replaces keys of the field's current value (the base's, else the field default), so
    a field whose default is a configured instance (e.g. an encoder with biases) keeps the keys the
    table does not name. Validation in ``__post_init__`` becomes a :class:`ConfigError` too.
    """
    return _build(cls, check_table(cls, table, path), path, base)


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _build(cls: type[D], typed: dict[str, Any], path: tuple[str, ...], base: D | None) -> D:
    fields = table_fields(cls)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in typed.items():
        sub = _dataclass_type(hints[key])
        if sub is not None and isinstance(value, dict):
            current = getattr(base, key) if base is not None else _field_default(fields[key])
            value = _build(sub, value, (*path, key), current if isinstance(current, sub) else None)
        kwargs[key] = value
    where = ".".join(path)
    if base is None:
        missing = [n for n, f in fields.items() if n not in kwargs and _field_default(f) is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"[{where}] needs {', '.join(repr(m) for m in missing)}", (*path, missing[0]))
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)  # type: ignore[type-var]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[{where}]: {err}", path) from None


def _convert(value: Any, tp: Any, path: tuple[str, ...]) -> Any:
    """``value`` as the annotation ``tp`` describes it, or a :class:`ConfigError` naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        table_type = _dataclass_type(tp)
        if table_type is not None and isinstance(value, Mapping):
            return check_table(table_type, value, path)  # a table: its own keys' errors, not "wrong type"
        arms = typing.get_args(tp)
        if type(None) in arms and (value is None or (isinstance(value, RawValue) and value.strip().lower() in ("none", "null"))):
            return None
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return _convert(value, arm, path)
            except ConfigError:
                continue
        raise _type_error(value, tp, path)
    if isinstance(value, RawValue):
        value = _parse_raw(value, tp)
    if tp is Any or tp is object:
        return value
    if origin is typing.Literal:
        if isinstance(value, str) and value in typing.get_args(tp):
            return value
        raise _type_error(value, tp, path)
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise _type_error(value, tp, path)
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(v, item, (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",)) for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, path)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, path)
        return check_table(tp, value, path)  # type: ignore[arg-type]
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        ok = True  # an annotation this checker does not model: the dataclass validates it
    if not ok:
        raise _type_error(value, tp, path)
    return value


def _parse_raw(raw: RawValue, tp: Any) -> Any:
    """Command-line text as ``tp``: strings stay text, numbers and booleans are read, anything else is a TOML value."""
    text = raw.strip()
    if tp is str or typing.get_origin(tp) is typing.Literal:
        return text
    if tp is bool:
        lowered = text.lower()
        return True if lowered in ("true", "1", "yes", "on") else False if lowered in ("false", "0", "no", "off") else text
    for number in (int, float):
        if tp is number:
            try:
                return number(text)
            except ValueError:
                return text
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _type_error(value: Any, tp: Any, path: tuple[str, ...]) -> ConfigError:
    shown = str(value) if isinstance(value, RawValue) else value
    return ConfigError(f"{'.'.join(path)}: expected {describe_type(tp)}, got {shown!r}", path)


def describe_type(tp: Any) -> str:
    """An annotation in words, for error messages ("an integer", "a list of numbers", "true or false")."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        words = [describe_type(a) if a is not type(None) else "none" for a in typing.get_args(tp)]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is list or origin is list:
        args = typing.get_args(tp)
        return f"a list of {_plural(describe_type(args[0]))}" if args else "a list"
    if tp is dict or origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(words: str) -> str:
    return {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "booleans"}.get(words, words)
