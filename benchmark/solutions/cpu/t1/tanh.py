"""Hyperbolic tangent in one vectorised pass: a Cephes-style tanh inlined, no SLEEF call.

Technique: for |x| < 0.625 an odd degree-11 polynomial (accurate near zero, where the closed form
cancels); above it 1 - 2 / (exp(2|x|) + 1) with an inlined polynomial exp, which saturates to +-1 on
its own (exp overflows to inf). Both branches are computed and blended, so the loop is branch-free and
vectorises 16 lanes wide. ATen's tanh calls SLEEF's tanhf, one of its most expensive float functions,
so the reference is compute-bound; this loop runs at several times its speed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>

// tanh to a few ulp. Computing both branches and selecting keeps the loop free of branches;
// NaN takes the polynomial branch (the compare is false) and stays NaN.
static inline float tanh_f(float x) {
  const float ax = std::fabs(x);
  const float far = 1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z + -5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z + -3.33332819422e-1f;
  const float near = x + x * z * p;
  return ax >= 0.625f ? std::copysign(far, x) : near;
}

// Below this many elements a fork/join costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

at::Tensor tanh_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "tanh: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = tanh_f(src[i]);
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("tanh", _CPP, ["tanh_forward"], snippets=["exp"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.tanh_forward(x)
