"""Several input configurations per case: the optional ``SHAPES`` of a case file.

``SHAPES = {"cpu": [{"batch_size": 64, "dim": 1000}, {...}], "gpu": [...]}`` lists, per backend, the
shapes a candidate is checked and timed on. Each entry overrides module-level size names on top of
``SIZES[backend]`` (an empty entry is the backend's sizes as they are); a backend without an entry has
one shape, which is what a case without ``SHAPES`` (a plain KernelBench file) has everywhere. A case is
a function of its sizes, and a kernel specialised to one of them (a block size that divides only that
width, a hard-coded length) is wrong on another, so correctness is checked on every shape.

The names a shape may set are checked like ``SIZES``: each must exist at module level, so a typo is a
load error naming the file rather than a shape that silently changes nothing.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

from harness.errors import CaseLoadError

SHAPE_BACKENDS = ("cpu", "gpu", "npu")


def declared_shapes(path: Path, module: types.ModuleType, backend: str) -> list[dict[str, Any]]:
    """The validated ``SHAPES[backend]`` of a case module; ``[{}]`` (one shape) where it declares none.

    The whole ``SHAPES`` is checked, not only this backend's list: a malformed entry for another
    backend is still a broken case file, and finding it on the CPU saves a failed GPU run.
    """
    shapes = getattr(module, "SHAPES", None)
    if shapes is None:
        return [{}]
    if not isinstance(shapes, dict):
        raise CaseLoadError(f"{path}: SHAPES must be a dict of backend -> list of {{name: value}}")
    unknown = [k for k in shapes if k not in SHAPE_BACKENDS]
    if unknown:
        raise CaseLoadError(f"{path}: SHAPES names unknown backend(s) {unknown}; use {', '.join(SHAPE_BACKENDS)}")
    for name, entries in shapes.items():
        if not isinstance(entries, (list, tuple)) or not entries:
            raise CaseLoadError(f"{path}: SHAPES[{name!r}] must be a non-empty list of {{name: value}} dicts")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not all(isinstance(k, str) for k in entry):
                raise CaseLoadError(f"{path}: SHAPES[{name!r}][{index}] must be a dict of module-level name -> value")
            undefined = [k for k in entry if not hasattr(module, k)]
            if undefined:
                raise CaseLoadError(f"{path}: SHAPES[{name!r}][{index}] overrides undefined name(s) {undefined}")
    return [dict(entry) for entry in shapes.get(backend) or [{}]]


class ShapeSelector:
    """Puts one shape's sizes into a case module, and can go back to any other shape.

    Created after ``SIZES[backend]`` was applied: the values of every name some shape sets are kept,
    so each shape starts from the backend's sizes, never from the shape selected before it.
    """

    def __init__(self, module: types.ModuleType, shapes: list[dict[str, Any]]) -> None:
        self.module = module
        self.shapes = shapes
        names = {name for entry in shapes for name in entry}
        self._base = {name: getattr(module, name) for name in sorted(names)}

    def __len__(self) -> int:
        return len(self.shapes)

    def select(self, index: int) -> None:
        """Set the module's size names to shape ``index`` (IndexError past the last shape)."""
        entry = self.shapes[index]
        for name, value in self._base.items():
            setattr(self.module, name, entry.get(name, value))

    def sizes(self, index: int) -> dict[str, Any]:
        """Shape ``index`` as results show it: every name some shape sets (the names that tell the shapes
        apart, the same for each shape), JSON-safe; empty for a case of one shape that sets nothing."""
        entry = self.shapes[index]
        return {name: json_safe(entry.get(name, value)) for name, value in self._base.items()}


def json_safe(value: Any) -> Any:
    """A size value as JSON can hold it (tuples as lists; anything else exotic as its repr)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return repr(value)[:80]


def describe(sizes: dict[str, Any]) -> str:
    """``batch_size=17, dim=1000``: a shape's sizes in one line, for reasons and tables."""
    return ", ".join(f"{name}={value}" for name, value in sizes.items())


def shape_label(index: int, count: int, sizes: dict[str, Any]) -> str:
    """``shape 2 of 3 (batch_size=17, dim=1000)``: how a reason names the shape it is about."""
    text = describe(sizes)
    return f"shape {index + 1} of {count}" + (f" ({text})" if text else "")
