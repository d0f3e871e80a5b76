"""Row L2 normalisation in one memory pass: sum of squares and scaling with the row held in L1.

Technique: a thread takes whole rows; the sum of squares is an omp simd reduction over the row, then
the cached row is scaled by 1 / max(||x||, eps) in a second vectorised sweep. Eager F.normalize runs a
norm kernel, a clamp, an expand and a broadcasting division: two passes over the matrix from memory
and two small temporaries. Multiplying by the reciprocal instead of dividing differs from the
reference by at most an ulp.
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

at::Tensor l2_normalize_forward(const at::Tensor& input, double eps) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "l2_normalize: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const float eps_f = static_cast<float>(eps);

#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < cols; ++j) sq += in[j] * in[j];
    const float norm = std::sqrt(sq);
    const float inv = 1.0f / (norm > eps_f ? norm : eps_f);  // clamp_min(eps); NaN norm stays NaN
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = in[j] * inv;
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("l2_normalize", _CPP, ["l2_normalize_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.l2_normalize_forward(x, 1e-12)  # F.normalize's default eps
