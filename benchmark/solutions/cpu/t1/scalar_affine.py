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
  TORCH_CHECK(input.scalar_type() == at::kFloat, "scalar_affine: expected float32, got ", input.scalar_type());
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
    """Compile ``source`` on first use; afterwards load the cached library (well under a second).

    Cache folder: $TORCH_EXTENSIONS_DIR (the images point it at a writable tmpfs; a candidate's home
    may be read-only) or ~/.cache/kernel-harness/torch_extensions. The folder name hashes everything
    that shapes the binary (source, flags, torch and Python versions), so an edit gets a fresh build
    instead of a stale library, and two machines sharing a cache never load each other's ISA level.
    """
    import fcntl
    import hashlib
    import os
    import platform
    import sys
    import tempfile
    from pathlib import Path

    from torch.utils.cpp_extension import load_inline

    # -O3 without -ffast-math: NaN/Inf must propagate as in ATen. -fno-math-errno/-fno-trapping-math
    # are what ATen itself is built with; vectorisation comes from `omp simd` pragmas, not reassociation.
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if platform.machine() in ("x86_64", "AMD64"):
        # The ISA level ATen dispatches to on this machine (not -march=native: the binary must run
        # on any machine of that level that shares the cache).
        capability = torch.backends.cpu.get_cpu_capability()
        flags += {"AVX512": ["-march=x86-64-v4", "-mprefer-vector-width=512"], "AVX2": ["-march=x86-64-v3"]}.get(
            capability, []
        )
    digest = hashlib.sha256("\0".join([source, *flags, torch.__version__, sys.version]).encode()).hexdigest()
    name = f"kh_{case}_{digest[:12]}"
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "kernel-harness" / "torch_extensions")
    build = Path(root) / name
    try:
        build.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable cache (read-only home, no TORCH_EXTENSIONS_DIR): build in TMPDIR
        build = Path(tempfile.gettempdir()) / name
        build.mkdir(parents=True, exist_ok=True)
    # torch's own build lock is a plain file that a killed build (a harness timeout) leaves behind, and
    # then every later load waits on it forever. An flock dies with its holder: whoever holds it is the
    # only builder, so a torch lock found inside it is stale.
    with open(build / "kh.flock", "w") as guard:
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
