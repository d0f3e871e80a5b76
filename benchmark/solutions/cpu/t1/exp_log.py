"""exp(x) and log(y) in one parallel pass over both inputs, with inlined polynomial exp and log.

Technique: both maps run in the same loop (one fork/join, four streams), and both transcendentals are
branch-free Cephes-style polynomials that the compiler vectorises 16 lanes wide: exp by range reduction
to |r| <= ln2/2, log by splitting off the exponent bits and a degree-9 polynomial in the mantissa, each
about 1 ulp. Eager PyTorch runs two kernels that call SLEEF's expf/logf per vector, which is slower
per element than these polynomials, so the reference is compute-bound on two cores.
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
#include <vector>

// Below this many elements a fork/join costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

std::vector<at::Tensor> exp_log_forward(const at::Tensor& x_in, const at::Tensor& y_in) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && y_in.scalar_type() == at::kFloat,
              "exp_log: expected float32");
  TORCH_CHECK(x_in.numel() == y_in.numel(), "exp_log: x and y must have the same number of elements");
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  at::Tensor ex = at::empty_like(x);
  at::Tensor ly = at::empty_like(y);
  const float* xs = x.data_ptr<float>();
  const float* ys = y.data_ptr<float>();
  float* exd = ex.data_ptr<float>();
  float* lyd = ly.data_ptr<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    exd[i] = exp_f(xs[i]);
    lyd[i] = log_f(ys[i]);
  }
  return {ex, ly};
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("exp_log", _CPP, ["exp_log_forward"], snippets=["exp", "log"])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ex, ly = self.kernels.exp_log_forward(x, y)
        return ex, ly
