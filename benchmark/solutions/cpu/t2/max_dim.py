"""Column max (amax over dim 0) with each thread streaming a contiguous band of rows.

Technique: the rows are split into one contiguous band per thread; a thread keeps a running maximum
for a block of 2048 columns (8 KiB, resident in L1) and folds every row of its band into it with a
vectorised, NaN-propagating max, so the input is read once, sequentially. The per-thread partial
maxima are merged at the end. ATen reduces over the outer dimension through its generic strided
reduction, which touches the matrix in a far less cache- and SIMD-friendly order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

// max that propagates NaN like torch.amax: once a NaN is seen it stays (both compares are false).
static inline float max_nan(float acc, float v) { return (v > acc || v != v) ? v : acc; }

// Columns per block: the running maxima of one block (32 KiB) stay in L1 while a band of rows streams
// past; the CPU-size rows fit in one block, so the band is read strictly sequentially.
constexpr int64_t kColumnBlock = 8192;

at::Tensor max_dim0_forward(const at::Tensor& input) {
  TORCH_CHECK(input.dim() == 2 && input.scalar_type() == at::kFloat,
              "max_dim: expected a 2-D float32 tensor");
  TORCH_CHECK(input.size(0) > 0, "max_dim: cannot reduce over an empty dimension");
  const at::Tensor x = input.contiguous();
  const int64_t rows = x.size(0);
  const int64_t cols = x.size(1);
  const float* src = x.data_ptr<float>();
  const bool parallel = rows * cols >= (1 << 15);
  const int threads = parallel ? omp_get_max_threads() : 1;
  std::vector<float> partial(static_cast<size_t>(threads) * cols, -std::numeric_limits<float>::infinity());

#pragma omp parallel num_threads(threads) if (parallel)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt;
    const int64_t r1 = rows * (t + 1) / nt;
    float* acc_row = partial.data() + t * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += kColumnBlock) {
      const int64_t width = std::min(kColumnBlock, cols - c0);
      float* acc = acc_row + c0;
      int64_t r = r0;
      // Four rows per sweep: one load and store of the accumulator per four input loads.
      for (; r + 4 <= r1; r += 4) {
        const float* a = src + r * cols + c0;
        const float* b = a + cols;
        const float* c = b + cols;
        const float* d = c + cols;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          float m = acc[j];  // a chain, not a tree: GCC if-converts (and so vectorises) only this form
          m = max_nan(m, a[j]);
          m = max_nan(m, b[j]);
          m = max_nan(m, c[j]);
          m = max_nan(m, d[j]);
          acc[j] = m;
        }
      }
      for (; r < r1; ++r) {
        const float* in = src + r * cols + c0;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) acc[j] = max_nan(acc[j], in[j]);
      }
    }
  }

  at::Tensor out = at::empty({cols}, x.options());
  float* dst = out.data_ptr<float>();
  std::copy(partial.begin(), partial.begin() + cols, dst);
  for (int t = 1; t < threads; ++t) {
    const float* p = partial.data() + static_cast<int64_t>(t) * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dst[j] = max_nan(dst[j], p[j]);
  }
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("max_dim", _CPP, ["max_dim0_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.max_dim0_forward(x)
