"""Exact (erf) GELU in one vectorised pass, with a rational erf instead of ATen's SLEEF call.

Technique: y = 0.5 * x * (1 + erf(x / sqrt(2))) with erf(z) = z * P(z^2) / Q(z^2) on z clamped to
[-4, 4] (degree 13/8 minimax, about 1 ulp in float32, the approximation Eigen and XLA use). It is
branch-free, so each 16-wide AVX-512 lane runs the same FMAs and one division; eager PyTorch calls the
SLEEF erf, which is accurate to 1 ulp too but needs several times more instructions per element, and
that makes GELU compute-bound on two cores. Here it is close to the memory-bound ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

// Below this many elements a fork/join costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

at::Tensor gelu_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "gelu: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const int64_t n = x.numel();
  // One pass: each thread takes a contiguous block and the compiler vectorises it (omp simd).
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = gelu_f(src[i]);
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("gelu", _CPP, ["gelu_forward"], snippets=["erf"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.gelu_forward(x)
