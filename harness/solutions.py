"""Helpers that solution files may import (the harness runs them, so it is always importable)."""

from __future__ import annotations

from pathlib import Path

from harness.cases import TIER_PATTERN, import_file


def reference_model(solution_file: str) -> type:
    """The reference ``Model`` class of the case that ``solution_file`` solves (the A/A control).

    A solution at ``<suite>/solutions/<set>/t<N>/<name>.py`` solves ``<suite>/t<N>/<name>.py``.
    """
    path = Path(solution_file).resolve()
    tier = path.parent.name
    if not TIER_PATTERN.match(tier):
        raise ImportError(f"{path}: reference_model() needs the solution in a t<N> folder")
    suite = path.parents[3]
    case_path = suite / tier / path.name
    module = import_file(case_path, f"_harness_reference_for_{tier}_{path.stem}")
    return module.Model
