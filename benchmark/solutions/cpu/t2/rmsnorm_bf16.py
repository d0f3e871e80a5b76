"""bfloat16 RMSNorm in one pass per row: float32 statistics, one rounding to bfloat16 at the end.

Technique: a thread takes whole rows; a row (2 KiB of bfloat16 at the CPU size) is widened to float32
in registers (a bfloat16 is the top half of a float32, so widening is a 16-bit shift), its sum of
squares is an omp simd reduction, and the scaled row is rounded back to bfloat16 with an exact
round-to-nearest-even bit trick. Eager PyTorch runs seven kernels (to float, pow, mean, add, rsqrt,
two multiplies, to bfloat16), five of them over full float32 copies of the input: this reads the input
once and writes the output once.
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
#include <cstring>
#include <vector>

static inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, as c10::BFloat16 does: add 0x7fff plus the lowest kept bit, then truncate.
// NaN becomes the canonical quiet NaN (the add could carry it into infinity).
static inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return f != f ? static_cast<uint16_t>(0x7fc0) : static_cast<uint16_t>(rounded);
}

at::Tensor rmsnorm_bf16_forward(const at::Tensor& input, const at::Tensor& weight_in, double eps) {
  TORCH_CHECK(input.scalar_type() == at::kBFloat16 && weight_in.scalar_type() == at::kBFloat16,
              "rmsnorm_bf16: expected bfloat16");
  const int64_t hidden = input.size(-1);
  TORCH_CHECK(weight_in.numel() == hidden, "rmsnorm_bf16: weight must have ", hidden, " elements");
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t rows = hidden == 0 ? 0 : x.numel() / hidden;
  const uint16_t* src = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  uint16_t* dst = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  const at::Tensor weight_c = weight_in.contiguous();
  const uint16_t* weight_bits = reinterpret_cast<const uint16_t*>(weight_c.data_ptr<at::BFloat16>());
  std::vector<float> w(hidden);  // widened once per call, shared by every row
  for (int64_t j = 0; j < hidden; ++j) w[j] = bf16_to_float(weight_bits[j]);
  const float* wp = w.data();
  const float eps_f = static_cast<float>(eps);

#pragma omp parallel for schedule(static) if (rows * hidden >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const uint16_t* in = src + i * hidden;
    uint16_t* out = dst + i * hidden;
    float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t j = 0; j < hidden; ++j) {
      const float v = bf16_to_float(in[j]);
      sum_sq += v * v;
    }
    const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(hidden) + eps_f);
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) {
      out[j] = float_to_bf16(bf16_to_float(in[j]) * inv_rms * wp[j]);  // the reference's order: (x * r) * w
    }
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter((1.0 + 0.1 * torch.randn(hidden)).to(torch.bfloat16))
        self.kernels = load_cpp_extension("rmsnorm_bf16", _CPP, ["rmsnorm_bf16_forward"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.rmsnorm_bf16_forward(x, self.weight, self.eps)
