"""The package's layout rules (docs/architecture.md): a newcomer can trust the folders.

- What runs inside worker processes (`harness.sandbox`) imports nothing of the supervisor side, the
  CLI, the artifact writers, the renderers or the other judging layers.
- Every folder of `harness/` states its job in its `__init__` docstring.
- No module is longer than 600 lines unless its docstring says why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
FORBIDDEN_IN_SANDBOX = (
    "harness.evaluation",
    "harness.cli",
    "harness.artifacts",
    "harness.render",
    "harness.analysis",
    "harness.containers",
    "harness.calibration",
    "harness.agent",
)
MAX_LINES = 600


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (functions included), with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith(forbidden):
                bad.append(f"{path.relative_to(folder.parent)}:{line} imports {module}")
    return bad


def test_the_sandbox_imports_nothing_of_the_supervisor_side_the_cli_or_the_writers() -> None:
    assert _violations(PACKAGE / "sandbox", FORBIDDEN_IN_SANDBOX) == []


def test_the_import_rule_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "sandbox" / "leaky.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from harness.evaluation.workers import ReferenceProcess\n")
    violations = [v.split(" imports ")[1] for v in _violations(tmp_path / "sandbox", FORBIDDEN_IN_SANDBOX)]
    assert "harness.evaluation.workers" in violations


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_folder_states_its_job(folder: str) -> None:
    tree = ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    assert len(doc.split()) >= 5, f"harness/{folder}/__init__.py needs a docstring saying what the folder is for"


def test_no_module_is_long_without_a_stated_reason() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and "Long because" not in doc:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
    assert long == [], "split these, or say in the docstring why not (a sentence starting 'Long because')"
