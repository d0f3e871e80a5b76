"""Helpers that solution files may import (the harness runs them, so it is always importable).

- :func:`reference_model`: the case's own ``Model`` (the A/A control set).
- :func:`load_cpp_extension`: build and load a solution's C++ kernels (``load_inline``) with the shared
  C++ snippets of ``harness/solutions/cpp/`` (the ``cpu`` set); :func:`cpp_source` shows the full text.
- ``harness.solutions.triton_kernels``: the Triton kernels several ``triton`` solutions share (GEMM,
  flash attention, row softmax, layer norm); a separate module, so that importing this package needs
  neither torch nor triton.

These are a public API for solution authors: a solution is a candidate, evaluated in a sandbox, and
may import them like any other package it can read.
"""

from __future__ import annotations

from pathlib import Path

from harness.solutions.cpp_extension import cpp_source, load_cpp_extension, snippet_names
from harness.suite.cases import TIER_PATTERN, import_file

__all__ = ["cpp_source", "load_cpp_extension", "reference_model", "snippet_names"]


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
