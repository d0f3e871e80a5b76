"""The suite manifest: every case with tier, shapes, dtypes, FLOPs and bytes moved per backend size
(and per shape, for a case that declares several).

The roofline inputs ("% of peak" reports) come from here. Shapes are found on torch's ``meta``
device, so even the GPU sizes cost no memory and no compute on a laptop.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from harness.errors import CaseLoadError
from harness.sandbox.correctness import as_output_list
from harness.suite.cases import BACKEND_NAMES, Case, LoadedCase, discover, load_case


def _describe(tensors: list[Any]) -> list[dict[str, Any]]:
    import torch

    described = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            described.append({"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")})
        else:
            described.append({"value": repr(t)[:80]})
    return described


def _nbytes(tensors: list[Any]) -> int:
    import torch

    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def profile(case: Case, backend: str) -> dict[str, Any]:
    """Shapes, dtypes, parameter bytes, FLOPs and minimum bytes moved of one case at one backend's sizes.

    A case of several shapes (``SHAPES``) is described at its first shape, and under ``shapes`` at
    every one, each with the sizes that tell it apart.
    """
    loaded = load_case(case, backend, module_name=f"_harness_manifest_{case.tier}_{case.name}_{backend}")
    described = _profile_shape(loaded)
    if loaded.shape_count > 1:
        shapes = []
        for index in range(loaded.shape_count):
            loaded.select_shape(index)
            shapes.append({"sizes": loaded.shape_sizes(), **_profile_shape(loaded)})
        described["shapes"] = shapes
    return described


def _profile_shape(loaded: LoadedCase) -> dict[str, Any]:
    """`profile` of the shape the loaded case holds now, found on the ``meta`` device."""
    import torch

    with torch.device("meta"):
        torch.manual_seed(0)
        inputs = loaded.inputs()
        model = loaded.model_class(*loaded.init_inputs())
        params = list(model.parameters()) + list(model.buffers()) if hasattr(model, "parameters") else []
        outputs: list[Any] | None
        try:
            with torch.no_grad():
                outputs = as_output_list(model(*inputs))
        except Exception:  # noqa: BLE001 - an op without a meta kernel: shapes unknown, not an error
            outputs = None
    param_bytes = _nbytes(params)
    input_bytes = _nbytes(inputs)
    output_bytes = _nbytes(outputs) if outputs is not None else None
    return {
        "inputs": _describe(inputs),
        "outputs": _describe(outputs) if outputs is not None else None,
        "parameters": sum(p.numel() for p in params),
        "flops": loaded.flops(),
        # each input and parameter read once, each output written once: the traffic floor
        "bytes_moved": input_bytes + param_bytes + output_bytes if output_bytes is not None else None,
    }


def build_manifest(suite: Path) -> list[dict[str, Any]]:
    """One entry per case of ``suite``; a case that cannot be loaded raises CaseLoadError."""
    entries = []
    for case in discover(suite):
        sizes: dict[str, Any] = {}
        for backend in BACKEND_NAMES:
            if backend not in case.backends:
                continue
            with contextlib.suppress(ImportError):
                sizes[backend] = profile(case, backend)
        if not sizes:
            raise CaseLoadError(f"{case.path}: could not be profiled on any backend")
        dtypes = sorted({d["dtype"] for s in sizes.values() for d in s["inputs"] if "dtype" in d})
        entries.append(
            {
                "name": case.name,
                "tier": case.tier,
                "path": case.path.relative_to(suite).as_posix(),
                "sha256": case.sha256(),
                "summary": case.summary,
                "backends": list(case.backends),
                "dtypes": dtypes,
                "sizes": sizes,
            }
        )
    return entries
