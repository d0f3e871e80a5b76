"""Scalar affine map alpha * x + beta as one fused pass (one FMA per element, no temporary).

Technique: eager PyTorch runs `x * alpha` and `+ beta` as two kernels, so it writes and re-reads a
temporary as large as the input and allocates two outputs. At the CPU size both tensors are about
30 MiB; with two of them alive at once glibc returns the freed memory to the kernel and every call
page-faults its buffers in again, which dominates the reference's time. One fused pass allocates only
the output and streams x once.
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
        self.kernels = load_cpp_extension("scalar_affine", _CPP, ["scalar_affine_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.scalar_affine_forward(x, self.alpha, self.beta)
