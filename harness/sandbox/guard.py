"""The tamper guard: what a candidate must not replace, recorded before it is imported.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

_MISSING = object()


class Guard:
    """The functions a candidate must not replace, recorded before it is imported.

    Catches the usual in-process cheats with a clear message: patching the clock (``time``), torch's
    functions and tensor methods, builtins, or the harness's own timing and checking code. Deeper
    tricks (ctypes, rewriting frames) are out of its reach; the supervisor's own clock bounds those.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str, Any, str, Any, Any]] = []  # label, namespace, name, value, code
        self._closed: list[tuple[str, Any, frozenset[str]]] = []  # namespaces that may not grow
        self._instances: list[tuple[str, Any]] = []  # objects whose attributes may not shadow methods

    @classmethod
    def capture(cls, *instances: Any) -> Guard:
        """Record the current state of torch, time, builtins, the harness and ``instances``."""
        import builtins

        import torch

        guard = cls()
        guard._add_module("time", time)
        guard._add_module("builtins", builtins)
        guard._add_module("torch", torch, public_only=True)
        for name in ("torch.nn.functional", "torch.testing", "torch.cuda"):
            module = sys.modules.get(name)
            if module is not None:
                guard._add_module(name, module, public_only=True)
        guard._add_npu(torch)
        guard._add_class("torch.Tensor", torch.Tensor)
        guard._add_class("torch._C.TensorBase", torch._C.TensorBase)
        from multiprocessing import connection

        for pipe_class in (connection._ConnectionBase, connection.Connection):  # the reply pipe
            guard._add_class(f"multiprocessing.connection.{pipe_class.__name__}", pipe_class)
        for name, module in list(sys.modules.items()):
            if (name == "harness" or name.startswith("harness.")) and isinstance(module, types.ModuleType):
                guard._add_module(name, module)
                for value in list(vars(module).values()):
                    if isinstance(value, type) and value.__module__ == name:
                        guard._add_class(f"{name}.{value.__qualname__}", value)
        for instance in instances:
            guard._instances.append((type(instance).__qualname__, instance))
        return guard

    def _add_npu(self, torch: Any) -> None:
        """``torch.npu`` (torch_npu's device module, also ``torch_npu.npu``) when torch_npu is loaded.

        The NPU backend times with its ``Event``, ``current_stream`` and ``synchronize``: a candidate that
        replaced one of them, a method of ``Event`` or ``Stream``, or ``torch.npu`` itself could fake its
        own times on an NPU run.
        """
        module = getattr(torch, "npu", None) or sys.modules.get("torch_npu.npu")
        if not isinstance(module, types.ModuleType):
            return
        if vars(torch).get("npu") is module:
            self._entries.append(("torch", vars(torch), "npu", module, None))
        self._add_module("torch.npu", module, public_only=True)
        for name in ("Event", "Stream"):
            cls = vars(module).get(name)
            if isinstance(cls, type):
                self._add_class(f"torch.npu.{name}", cls)

    def _add_module(self, label: str, module: types.ModuleType, public_only: bool = False) -> None:
        namespace = vars(module)
        for name, value in list(namespace.items()):
            if public_only and name.startswith("_"):
                continue
            if callable(value) and not isinstance(value, types.ModuleType):
                self._entries.append((label, namespace, name, value, getattr(value, "__code__", None)))

    def _add_class(self, label: str, cls: type) -> None:
        namespace = cls.__dict__
        for name, value in list(namespace.items()):
            self._entries.append((label, namespace, name, value, getattr(value, "__code__", None)))
        self._closed.append((label, cls, frozenset(namespace)))

    def violations(self) -> list[str]:
        """Names of recorded functions that were replaced, removed or shadowed since ``capture``."""
        found = []
        for label, namespace, name, value, code in self._entries:
            current = namespace.get(name, _MISSING)
            if current is not value or (code is not None and getattr(current, "__code__", None) is not code):
                found.append(f"{label}.{name}")
        for label, cls, names in self._closed:
            found += [f"{label}.{name}" for name in cls.__dict__.keys() - names]
        for label, instance in self._instances:
            own = getattr(instance, "__dict__", {})
            found += [f"{label}.{n}" for n in own if callable(getattr(type(instance), n, None))]
        return found
