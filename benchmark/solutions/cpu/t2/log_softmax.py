"""Row log-softmax with the row held in L1: one read from memory, an inlined polynomial exp, one write.

Technique: a thread takes whole rows (32 KiB at the CPU size, which fits L1); the max and the sum of
exp(x - max) are omp simd reductions over the cached row and the output x - (max + log(sum)) is written
in a third vectorised sweep, so memory sees one read and one write per element. ATen makes the same
sweeps with SLEEF's exp, which costs more per element than the branch-free polynomial here (about
1 ulp). The subtraction is done once per element against a per-row constant, so the large negative
log-probabilities keep full float32 accuracy.
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

at::Tensor log_softmax_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "log_softmax: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    const float m = row_max(in, cols);
    const float shift = m + std::log(sum_exp_shifted(in, cols, m));
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = in[j] - shift;
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("log_softmax", _CPP, ["log_softmax_forward"], snippets=["softmax"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.log_softmax_forward(x)
