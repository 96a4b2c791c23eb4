"""The dependency direction of DESIGN.md §1, read from the import graph of the source files.

Rules: the trainer (voxkit/train) and the op registry (voxkit/ops) import no model package; the
backbone (lm/) imports nothing from the models built on it (asr/, codec/, tts/, chat). Every import
counts: at module level, inside functions, under ``TYPE_CHECKING``, relative ones, and module names
given as strings (``importlib.import_module("voxkit.asr")``, registry entries ``"voxkit.asr.task:f"``).
Folders map to modules as pyproject's ``[tool.setuptools] package-dir`` says (lm/ -> voxkit.lm).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("voxkit.asr", "voxkit.codec", "voxkit.tts", "voxkit.chat", "voxkit.lm")
RULES: dict[str, tuple[str, ...]] = {
    "voxkit.train": MODELS,
    "voxkit.ops": MODELS,
    "voxkit.lm": ("voxkit.asr", "voxkit.codec", "voxkit.tts", "voxkit.chat"),
}
_MODULE_STRING = re.compile(r"^(voxkit(?:\.\w+)+)(?::[\w.]+)?$")  # "voxkit.a.b" or "voxkit.a.b:function"
_IMPORT_CALLS = {"import_module", "__import__"}


def package_dirs() -> dict[str, Path]:
    """Top-level module name -> folder, from pyproject (``voxkit.lm`` -> lm/, ``voxkit`` -> voxkit/)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) for every source file; a folder mapped on its own wins over its parent."""
    dirs = package_dirs()
    for name, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join([name, *parts])
            if any(other != name and other.startswith(name + ".") and (module + ".").startswith(other + ".") for other in dirs):
                continue  # belongs to a more specific mapping
            yield module, path


def imports(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, imported module name) for every import in ``source``, the module's own code."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:  # ``from voxkit import asr`` imports the module voxkit.asr
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if name in _IMPORT_CALLS and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _MODULE_STRING.match(node.value)
            if match:
                yield node.lineno, match.group(1)


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found: dict[tuple[str, int], str] = {}  # one report per import line: its shortest forbidden name
    for module, path in modules():
        if not inside(module, package):
            continue
        for line, target in imports(path.read_text(), module, path.name == "__init__.py"):
            key = (str(path.relative_to(ROOT)), line)
            if any(inside(target, f) for f in forbidden) and len(target) < len(found.get(key, target + ".")):
                found[key] = target
    return [f"{file}:{line} imports {target}" for (file, line), target in sorted(found.items())]


def test_the_scanner_sees_every_kind_of_import() -> None:
    source = '''
import voxkit.codec.quantizer
from voxkit import tts
from ..asr import model
from . import sibling
import importlib
def later():
    from voxkit.chat.compose import Chat
    return importlib.import_module("voxkit.lm.rope")
FACTORIES = {"asr": "voxkit.asr.task:build_asr_task"}
MESSAGE = "see voxkit.asr for details"
'''
    found = {target for _, target in imports(source, "voxkit.train.trainer", is_package=False)}
    for expected in ("voxkit.codec.quantizer", "voxkit.tts", "voxkit.asr.model", "voxkit.train.sibling", "voxkit.chat.compose",
                     "voxkit.lm.rope", "voxkit.asr.task"):
        assert expected in found
    assert not any("details" in f for f in found)  # prose naming a module is not an import


def test_folders_map_as_pyproject_says() -> None:
    names = dict(modules())
    assert names["voxkit.lm.rope"] == ROOT / "lm" / "rope.py"
    assert names["voxkit.ops.registry"] == ROOT / "voxkit" / "ops" / "registry.py"
    assert names["voxkit.asr"] == ROOT / "asr" / "__init__.py"


@pytest.mark.parametrize("package", list(RULES))
def test_dependency_direction(package: str) -> None:
    found = violations(package, RULES[package])
    assert not found, f"{package} must not import {', '.join(RULES[package])}:\n" + "\n".join(found)
