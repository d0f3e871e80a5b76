"""The case and solution file contracts, discovery of a suite, and safe loading from a path.

A case is a KernelBench problem file: ``Model(nn.Module)``, ``get_inputs()``, ``get_init_inputs()``,
optionally ``ATOL``/``RTOL``, ``SIZES`` (per-backend overrides of module-level size names),
``SHAPES`` (per backend, several such overrides: `harness.suite.shapes`), ``BACKENDS`` (the backends
it can run on) and ``get_flops()``. Cases live in ``<suite>/t<N>/<name>.py``;
a solution for it lives in ``<solutions>/t<N>/<name>.py`` (or flat ``<solutions>/<name>.py``) and defines
``ModelNew`` with the same constructor arguments.

Discovery reads files as text (AST) and never imports torch, so ``harness list`` is cheap.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import re
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import BadInput, CaseLoadError
from harness.suite.shapes import ShapeSelector, declared_shapes

TIER_PATTERN = re.compile(r"^t(\d+)$")
BACKEND_NAMES = ("cpu", "gpu", "npu")
DEFAULT_TOLERANCE = 1e-2
# Imports that tie a case to one backend; a case that imports one is skipped elsewhere. Only module
# names a real install provides belong here: triton-ascend installs its compiler as the package
# `triton` (like upstream Triton, so `import triton` says nothing about the device), and no
# `triton_ascend` module exists. What only an NPU machine has is torch_npu.
BACKEND_ONLY_IMPORTS = {"torch_npu": "npu"}


@dataclass(frozen=True)
class Case:
    """One reference case found on disk (not imported yet)."""

    name: str
    tier: str
    path: Path
    backends: tuple[str, ...] = BACKEND_NAMES
    summary: str = ""
    # shapes per backend as a literal SHAPES declares them (for `harness list`; load_case checks them)
    shape_counts: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def tier_number(self) -> int:
        return int(self.tier[1:])

    def skip_reason(self, backend: str) -> str | None:
        """Why this case cannot run on ``backend``, or None when it can."""
        if backend in self.backends:
            return None
        return f"case runs only on backend(s) {', '.join(self.backends)}, not {backend}"

    def sha256(self) -> str:
        return file_sha256(self.path)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _static_facts(path: Path) -> tuple[tuple[str, ...], str, dict[str, int]]:
    """Backends a case supports, the first line of its docstring and its shape counts per backend
    (from a literal ``SHAPES``; empty when it has none or builds it), read without importing it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise CaseLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}; fix the case file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseLoadError(f"{path}: cannot read case file: {exc}") from exc
    backends: set[str] = set(BACKEND_NAMES)
    shape_counts: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SHAPES" for t in node.targets):
            with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                shapes = ast.literal_eval(node.value)
                if isinstance(shapes, dict):
                    shape_counts = {str(b): len(v) for b, v in shapes.items() if isinstance(v, (list, tuple))}
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module.split(".")[0]]
        for name in names:
            if name in BACKEND_ONLY_IMPORTS:
                backends &= {BACKEND_ONLY_IMPORTS[name]}
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "BACKENDS" for t in node.targets)
        ):
            try:
                declared = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
                raise CaseLoadError(f"{path}: BACKENDS must be a literal tuple of backend names") from exc
            if not isinstance(declared, (tuple, list)) or not all(isinstance(b, str) for b in declared):
                raise CaseLoadError(f"{path}: BACKENDS must be a tuple of backend names such as ('cpu', 'gpu')")
            unknown = set(declared) - set(BACKEND_NAMES)
            if unknown:
                raise CaseLoadError(f"{path}: BACKENDS names unknown backend(s) {sorted(unknown)}")
            backends &= set(declared)
    doc = ast.get_docstring(tree) or ""
    summary = doc.strip().splitlines()[0] if doc.strip() else ""
    return tuple(b for b in BACKEND_NAMES if b in backends), summary, shape_counts


def discover(
    suite: Path,
    tiers: Sequence[str] = (),
    names: Sequence[str] = (),
    keyword: str | None = None,
) -> list[Case]:
    """Cases of ``suite`` matching every filter given, ordered by tier then name.

    Raises BadInput for a missing suite, unknown tier names, names that match nothing and duplicate
    case names across tiers (a solution is found by name, so names must be unique).
    """
    if not suite.is_dir():
        raise BadInput(
            f"no suite at {suite} (looked in {suite.absolute()}); pass --suite DIR, the folder holding t1/, t2/, ..."
            " (the default, benchmark, is relative to the current folder: the repository's root)"
        )
    for tier in tiers:
        if not TIER_PATTERN.match(tier):
            raise BadInput(f"--tier {tier!r} is not a tier name; use t1, t2, ...")
    found: dict[str, Case] = {}
    tier_dirs = sorted(
        (d for d in suite.iterdir() if d.is_dir() and TIER_PATTERN.match(d.name)),
        key=lambda d: int(d.name[1:]),
    )
    for tier_dir in tier_dirs:
        if tiers and tier_dir.name not in tiers:
            continue
        for path in sorted(tier_dir.glob("*.py")):
            if path.name.startswith("_"):
                continue
            name = path.stem
            if name in found:
                raise BadInput(
                    f"duplicate case name {name!r}: {found[name].path} and {path}; rename one of them"
                )
            backends, summary, shape_counts = _static_facts(path)
            found[name] = Case(
                name=name, tier=tier_dir.name, path=path, backends=backends, summary=summary, shape_counts=shape_counts
            )
    cases = list(found.values())
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise BadInput(f"--case {', '.join(missing)}: no such case in {suite} (see `harness list`)")
        cases = [c for c in cases if c.name in names]
    if keyword:
        kw = keyword.lower()
        cases = [c for c in cases if kw in c.name.lower() or kw in c.summary.lower()]
    return cases


def case_from_file(path: Path) -> Case:
    """A Case for a single file given on the command line (tier from its folder, else t1)."""
    if not path.is_file():
        raise BadInput(f"case file {path} does not exist")
    tier = path.parent.name if TIER_PATTERN.match(path.parent.name) else "t1"
    backends, summary, shape_counts = _static_facts(path)
    return Case(name=path.stem, tier=tier, path=path, backends=backends, summary=summary, shape_counts=shape_counts)


def solution_paths(solutions: Path, case: Case) -> list[Path]:
    """Candidate files for ``case`` in a solution set, in attempt order.

    ``<solutions>/t<N>/<name>.py`` (or flat ``<solutions>/<name>.py``) is one candidate; a folder
    ``<solutions>/t<N>/<name>/`` holds several attempts (``*.py``, sorted) for pass@N.
    """
    for base in (solutions / case.tier, solutions):
        file = base / f"{case.name}.py"
        if file.is_file():
            return [file]
        folder = base / case.name
        if folder.is_dir():
            attempts = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
            if attempts:
                return attempts
    return []


# --- loading (imports torch through the loaded files) ---------------------------------------------


def import_file(path: Path, module_name: str) -> types.ModuleType:
    """Import a Python file by path under a private module name; errors become CaseLoadError."""
    if not path.is_file():
        raise CaseLoadError(f"{path}: file does not exist")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CaseLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise CaseLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except BaseException as exc:  # noqa: BLE001 - any failure while importing user code is a load error
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise CaseLoadError(f"{path}: import failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    return module


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


@dataclass
class LoadedCase:
    """A case module imported and configured for one backend."""

    case: Case
    module: types.ModuleType
    backend: str
    shapes: ShapeSelector | None = field(default=None, repr=False)  # set by load_case; None: one shape
    shape: int = 0  # the shape whose sizes the module holds now

    @property
    def shape_count(self) -> int:
        return len(self.shapes) if self.shapes is not None else 1

    def select_shape(self, index: int) -> None:
        """Give the module shape ``index``'s sizes (``SHAPES[backend][index]`` over ``SIZES[backend]``)."""
        if not 0 <= index < self.shape_count:
            raise CaseLoadError(f"{self.case.path}: has {self.shape_count} shape(s) on {self.backend}, not {index + 1}")
        if self.shapes is not None:
            self.shapes.select(index)
        self.shape = index

    def shape_sizes(self) -> dict[str, Any]:
        """The sizes that tell the current shape apart from the others (empty for one shape)."""
        return self.shapes.sizes(self.shape) if self.shapes is not None else {}

    @property
    def model_class(self) -> type:
        return self.module.Model

    @property
    def atol(self) -> float:
        return float(getattr(self.module, "ATOL", DEFAULT_TOLERANCE))

    @property
    def rtol(self) -> float:
        return float(getattr(self.module, "RTOL", DEFAULT_TOLERANCE))

    def init_inputs(self) -> list[Any]:
        return _call_list(self.case.path, self.module, "get_init_inputs")

    def inputs(self) -> list[Any]:
        return _call_list(self.case.path, self.module, "get_inputs")

    def flops(self) -> int | None:
        fn = getattr(self.module, "get_flops", None)
        return int(fn()) if callable(fn) else None


def _call_list(path: Path, module: types.ModuleType, name: str) -> list[Any]:
    try:
        value = getattr(module, name)()
    except Exception as exc:
        raise CaseLoadError(f"{path}: {name}() raised {type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(value, (list, tuple)):
        raise CaseLoadError(
            f"{path}: {name}() must return a list, got {type(value).__name__}; return a list such as [x]"
        )
    return list(value)


def load_case(case: Case, backend: str, module_name: str | None = None, shape: int = 0) -> LoadedCase:
    """Import a case, check the contract and apply its ``SIZES[backend]`` overrides, then shape ``shape``
    of its ``SHAPES[backend]`` (the first by default; a case without SHAPES has one)."""
    module = import_file(case.path, module_name or f"_harness_case_{case.tier}_{case.name}")
    for attr in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, attr):
            raise CaseLoadError(f"{case.path}: missing {attr}; a case defines Model, get_inputs, get_init_inputs")
    apply_sizes(case.path, module, backend)
    shapes = declared_shapes(case.path, module, backend)
    loaded = LoadedCase(case=case, module=module, backend=backend, shapes=ShapeSelector(module, shapes))
    loaded.select_shape(shape)
    return loaded


def apply_sizes(path: Path, module: types.ModuleType, backend: str) -> None:
    """Overwrite module-level size names with ``SIZES[backend]`` (KernelBench callers see the defaults)."""
    sizes = getattr(module, "SIZES", None)
    if sizes is None:
        return
    if not isinstance(sizes, dict):
        raise CaseLoadError(f"{path}: SIZES must be a dict of backend -> {{name: value}}")
    overrides = sizes.get(backend) or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise CaseLoadError(f"{path}: SIZES[{backend!r}] must be a dict of module-level name -> value")
    unknown = [k for k in overrides if not hasattr(module, k)]
    if unknown:
        raise CaseLoadError(
            f"{path}: SIZES[{backend!r}] overrides undefined name(s) {unknown}; define them at module level"
            " (e.g. batch_size = 64) or remove them from SIZES"
        )
    for key, value in overrides.items():
        setattr(module, key, value)


def load_solution_class(path: Path, module_name: str = "_harness_candidate") -> type:
    """Import a candidate file and return its ``ModelNew`` class."""
    module = import_file(path, module_name)
    cls = getattr(module, "ModelNew", None)
    if cls is None:
        raise CaseLoadError(f"{path}: missing ModelNew; a solution defines class ModelNew(nn.Module)")
    if not isinstance(cls, type):
        raise CaseLoadError(f"{path}: ModelNew must be a class, got {type(cls).__name__}")
    return cls


def iter_names(cases: Iterable[Case]) -> list[str]:
    return [c.name for c in cases]
