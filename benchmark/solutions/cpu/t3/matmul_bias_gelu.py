"""Linear + exact GELU: oneDNN GEMM with the bias, then GELU in place on its output in one C++ pass.

Technique: the GEMM and bias add run in oneDNN (torch's mkldnn linear op, AVX-512 brgemm); the GELU
epilogue is a C++ loop over the fresh output, in place, with a branch-free rational erf (about 1 ulp)
vectorised 16 lanes wide. Eager PyTorch runs MKL's addmm and then F.gelu, which allocates a second
output and evaluates SLEEF's erf. The speedup is mostly the GEMM library (oneDNN vs MKL on this AMD
CPU); the fused epilogue removes one allocation and one pass over the output.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

// erf on the float range: z * P(z^2) / Q(z^2) with z clamped to [-4, 4], where erf(z) rounds to +-1.
// Branch-free so the loop vectorises; NaN passes through (both clamp compares are false for NaN).
static inline float erf_f(float x) {
  const float z = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float z2 = z * z;
  float p = -2.72614225801306e-10f;
  p = p * z2 + 2.77068142495902e-08f;
  p = p * z2 + -2.10102402082508e-06f;
  p = p * z2 + -5.69250639462346e-05f;
  p = p * z2 + -7.34990630326855e-04f;
  p = p * z2 + -2.95459980854025e-03f;
  p = p * z2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * z2 + -2.13374055278905e-04f;
  q = q * z2 + -1.68282697438203e-03f;
  q = q * z2 + -7.37332916720468e-03f;
  q = q * z2 + -1.42647390514189e-02f;
  return z * p / q;
}

// y = gelu(y) in place (exact erf form).
at::Tensor gelu_(at::Tensor y) {
  TORCH_CHECK(y.scalar_type() == at::kFloat && y.is_contiguous(), "gelu_: expected contiguous float32");
  float* data = y.data_ptr<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n >= (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float v = data[i];
    data[i] = 0.5f * v * (1.0f + erf_f(v * 0.70710678118654752f));
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)  # same names: gets the reference's weights
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _linear(x, self.linear.weight, self.linear.bias)
        return self.kernels.gelu_(y.contiguous())


# The GEMM: oneDNN's fp32 brgemm through torch's own mkldnn op, where torch has it. Eager F.linear
# calls MKL's sgemm, which on AMD CPUs does not take its AVX-512 path and runs at under half oneDNN's
# speed on the EPYC of docs/cpu-solutions.md (on Intel CPUs the gap should be small). F.linear is the
# fallback.
_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias, a fresh tensor the epilogue kernels may overwrite (inference only)."""
    if _ONEDNN_LINEAR and not torch.is_grad_enabled():  # the mkldnn op has no autograd formula
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return nn.functional.linear(x, weight, bias)


@functools.cache
def _kernels() -> Any:
    return _load_extension("matmul_bias_gelu", _CPP, ['gelu_'])


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
