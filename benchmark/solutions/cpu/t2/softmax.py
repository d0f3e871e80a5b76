"""Row softmax with the row held in L1: one read from memory, an inlined polynomial exp, one write.

Technique: a thread takes whole rows; the max is an omp simd reduction over the row, then a second
vectorised loop writes exp(x - max) to the output while summing it, and a third scales the (still
cached) output by 1 / sum. Memory sees one read and one write per element. ATen does the same three
sweeps but with SLEEF's exp, which costs more per element than the branch-free polynomial here
(about 1 ulp), and on two cores the exp is what bounds the kernel.
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

at::Tensor softmax_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "softmax: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) softmax_row(src + i * cols, dst + i * cols, cols);
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("softmax", _CPP, ["softmax_forward"], snippets=["softmax"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.softmax_forward(x)
