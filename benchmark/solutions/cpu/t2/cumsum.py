"""Row-wise inclusive prefix sum with an in-register SIMD scan and a carried running total.

Technique: a thread takes whole rows. Each 8-float vector is scanned in registers (three shift-and-add
steps, Hillis-Steele), then the running total of the row so far is added and the vector's own total
(its last lane, broadcast) is added to the running total. The loop-carried dependency is a single
vector add per 8 elements instead of one scalar add per element. Written with GCC vector extensions,
so it compiles on any target. ATen's CPU cumsum walks each row with a scalar loop accumulating in
double. Accumulating in float32 is accurate to well within the tolerance at these lengths
(error about sqrt(n) ulp of the running sum).
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
#include <cstring>

typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

// Inclusive scan of 8 lanes: add the vector shifted up by 1, 2 and 4 lanes (zeros shifted in).
static inline f8 scan8(f8 v) {
  const f8 zero = {};
  v += __builtin_shuffle(zero, v, (i8){0, 8, 9, 10, 11, 12, 13, 14});
  v += __builtin_shuffle(zero, v, (i8){0, 1, 8, 9, 10, 11, 12, 13});
  v += __builtin_shuffle(zero, v, (i8){0, 1, 2, 3, 8, 9, 10, 11});
  return v;
}

at::Tensor cumsum_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "cumsum: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const int64_t vec_cols = cols - cols % 8;

#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    f8 carry = {};  // the row's running total, in every lane
    for (int64_t j = 0; j < vec_cols; j += 8) {
      f8 v;
      std::memcpy(&v, in + j, sizeof v);  // unaligned load
      v = scan8(v);
      const f8 total = __builtin_shuffle(v, (i8){7, 7, 7, 7, 7, 7, 7, 7});
      v += carry;
      carry += total;
      std::memcpy(out + j, &v, sizeof v);
    }
    float acc = carry[0];
    for (int64_t j = vec_cols; j < cols; ++j) {
      acc += in[j];
      out[j] = acc;
    }
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("cumsum", _CPP, ["cumsum_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.cumsum_forward(x)
