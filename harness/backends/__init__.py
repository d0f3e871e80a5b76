"""Backends: one module per device kind behind the small interface in `base`.

Modules are imported lazily so that choosing one backend never imports another's runtime
(torch_npu on a CUDA host, say).
"""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.errors import BadInput
from harness.suite.cases import BACKEND_NAMES

_MODULES = {"cpu": "harness.backends.cpu", "gpu": "harness.backends.gpu", "npu": "harness.backends.npu"}


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (cpu, gpu, npu); BadInput for any other name."""
    if name not in _MODULES:
        raise BadInput(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    module = importlib.import_module(_MODULES[name])
    backend: Backend = module.BACKEND
    return backend


__all__ = ["Backend", "get_backend"]
