"""Linear + LayerNorm: oneDNN GEMM with the bias, then the layer norm in place, row by row, in C++.

Technique: the GEMM and bias add run in oneDNN (torch's mkldnn linear op, AVX-512 brgemm); each output
row (2 KiB at the CPU size) is then normalised in place while it sits in L1: mean and variance as
exact two-pass omp simd reductions, then one sweep of (y * rstd - mean * rstd) * weight + bias.
Eager PyTorch runs MKL's addmm, then layer_norm into a second allocation. The speedup is mostly the
GEMM library (oneDNN vs MKL on this AMD CPU); the in-place epilogue saves one allocation and a pass.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>

at::Tensor layernorm_(at::Tensor y, const at::Tensor& weight_in, const at::Tensor& bias_in, double eps) {
  TORCH_CHECK(y.scalar_type() == at::kFloat && y.is_contiguous(), "layernorm_: expected contiguous float32");
  const int64_t cols = y.size(-1);
  TORCH_CHECK(weight_in.numel() == cols && bias_in.numel() == cols, "layernorm_: weight and bias must have ", cols, " elements");
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor bias = bias_in.contiguous();
  const int64_t rows = cols == 0 ? 0 : y.numel() / cols;
  float* data = y.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  const float inv_cols = 1.0f / static_cast<float>(cols);
  const float eps_f = static_cast<float>(eps);
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    float* row = data + i * cols;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; ++j) sum += row[j];
    const float mean = sum * inv_cols;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < cols; ++j) {
      const float d = row[j] - mean;
      sq += d * d;
    }
    const float rstd = 1.0f / std::sqrt(sq * inv_cols + eps_f);
    const float shift = -mean * rstd;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) row[j] = (row[j] * rstd + shift) * w[j] + b[j];
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        # The reference's modules and names, so the harness hands over the reference's weights.
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.LayerNorm(out_features)
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _linear(x, self.linear.weight, self.linear.bias)
        return self.kernels.layernorm_(y.contiguous(), self.norm.weight, self.norm.bias, self.norm.eps)


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
    return _load_extension("linear_layernorm", _CPP, ['layernorm_'])


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
