"""Sum over the middle dimension of (batch, rows, cols): contiguous row streams into an L1 accumulator.

Technique: work items are (batch, block of up to 1024 columns); for each, the output row segment is
the accumulator (at most 4 KiB, so it stays in L1) and every input row of the batch is added into it
with a vectorised loop. The input is read once, sequentially, and nothing else is written. ATen's
generic reduction over a non-innermost dimension does not get this layout and is several times
slower per byte at the CPU size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>

// Columns per work item: the accumulator stays in L1 while the rows of one batch stream past it.
constexpr int64_t kColumnBlock = 1024;

at::Tensor sum_dim1_forward(const at::Tensor& input) {
  TORCH_CHECK(input.dim() == 3 && input.scalar_type() == at::kFloat,
              "sum_dim: expected a 3-D float32 tensor");
  const at::Tensor x = input.contiguous();
  const int64_t batch = x.size(0);
  const int64_t rows = x.size(1);
  const int64_t cols = x.size(2);
  at::Tensor out = at::empty({batch, cols}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;

#pragma omp parallel for schedule(static) if (batch * rows * cols >= (1 << 15))
  for (int64_t item = 0; item < batch * blocks; ++item) {
    const int64_t b = item / blocks;
    const int64_t c0 = (item % blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, cols - c0);
    float* acc = dst + b * cols + c0;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) acc[j] = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = src + (b * rows + r) * cols + c0;
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) acc[j] += in[j];
    }
  }
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("sum_dim", _CPP, ["sum_dim1_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.sum_dim1_forward(x)
