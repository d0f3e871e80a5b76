"""Scalar affine map alpha * x + beta as one fused pass (one FMA per element, no temporary).

Technique: eager PyTorch runs `x * alpha` and `+ beta` as two kernels, so it writes and re-reads a
temporary as large as the input and allocates two outputs. At the CPU size both tensors are about
30 MiB; with two of them alive at once glibc returns the freed memory to the kernel and every call
page-faults its buffers in again, which dominates the reference's time. One fused pass allocates only
the output and streams x once.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

// Below this many elements a fork/join costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

at::Tensor scalar_affine_forward(const at::Tensor& input, double alpha, double beta) {
  TORCH_CHECK(input.scalar_type() == at::kFloat,
              "scalar_affine: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const int64_t n = x.numel();
  // ATen computes a float tensor times a Python scalar in float32: round the scalars the same way.
  const float a = static_cast<float>(alpha);
  const float b = static_cast<float>(beta);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = src[i] * a + b;  // contracted to one FMA: one rounding instead of the reference's two
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.scalar_affine_forward(x, self.alpha, self.beta)


@functools.cache
def _kernels() -> Any:
    return _load_extension("scalar_affine", _CPP, ["scalar_affine_forward"])


# --- build helper: the same in every cpu solution, so that each file can be loaded on its own -------


def _load_extension(case: str, source: str, functions: list[str]) -> Any:
    """The compiled kernels: a finished build if one exists, else a fresh one (tens of seconds).

    A build lives in <root>/<name>/, where the name hashes everything that shapes the binary (source,
    flags, torch and Python versions): an edited kernel gets a new folder instead of a stale library,
    and machines sharing a cache never load each other's ISA level. Roots: $TORCH_EXTENSIONS_DIR when
    set, then ~/.cache/kernel-harness/torch_extensions of the account (found through the password
    database: the harness points HOME and TORCH_EXTENSIONS_DIR into a candidate's scratch folder and
    refuses writes outside it, so a sandboxed candidate can only *read* a build made outside, e.g. by
    benchmarks/cpu_solutions.py). Builds go to the first root that is writable, else to TMPDIR.
    """
    import fcntl
    import hashlib
    import importlib.util
    import os
    import platform
    import pwd
    import sys
    import tempfile
    from pathlib import Path

    # -O3 without -ffast-math: NaN/Inf must propagate as in ATen. -fno-math-errno/-fno-trapping-math
    # are what ATen itself is built with; vectorisation comes from `omp simd` pragmas, not reassociation.
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if platform.machine() in ("x86_64", "AMD64"):
        # The ISA level ATen dispatches to on this machine (not -march=native: the binary must run
        # on any machine of that level that shares the cache).
        isa = {"AVX512": ["-march=x86-64-v4", "-mprefer-vector-width=512"], "AVX2": ["-march=x86-64-v3"]}
        flags += isa.get(torch.backends.cpu.get_cpu_capability(), [])
    digest = hashlib.sha256("\0".join([source, *flags, torch.__version__, sys.version]).encode()).hexdigest()
    name = f"kh_{case}_{digest[:12]}"
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:  # an anonymous container user
        home = Path.home()
    roots = [Path(os.environ["TORCH_EXTENSIONS_DIR"])] if os.environ.get("TORCH_EXTENSIONS_DIR") else []
    roots.append(home / ".cache" / "kernel-harness" / "torch_extensions")

    for root in roots:  # a finished build: import it directly (no compiler, no lock, nothing written)
        library = root / name / f"{name}.so"
        spec = importlib.util.spec_from_file_location(name, library) if library.is_file() else None
        if spec is not None and spec.loader is not None:
            try:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
            except (ImportError, OSError):  # torn by a killed build: build again below
                pass

    from torch.utils.cpp_extension import load_inline  # a tenth of a second: only when building

    for root in [*roots, Path(tempfile.gettempdir()) / "torch_extensions"]:
        build = root / name
        try:
            build.mkdir(parents=True, exist_ok=True)
            guard = open(build / "kh.flock", "w")  # held for the whole build
        except OSError:  # read-only (a sandboxed candidate, a read-only home): the next root
            continue
        with guard:
            # torch's build lock is a plain file that a killed build (a harness timeout) leaves behind;
            # later loads would wait on it forever. An flock dies with its holder: whoever holds it is
            # the only builder, so a torch lock found inside is stale.
            fcntl.flock(guard, fcntl.LOCK_EX)
            (build / "lock").unlink(missing_ok=True)
            return load_inline(
                name,
                source,
                functions=functions,
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build),
                # Per-operator ATen headers instead of torch/extension.h halve the cold compile.
                no_implicit_headers=True,
                with_pytorch_error_handling=False,
            )
    raise RuntimeError(f"{case}: no writable folder to build the C++ kernels in")
