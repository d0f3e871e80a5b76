"""Linear + LayerNorm in C++: a register-tiled GEMM with the bias fused, then the norm in place per row.

Technique: nn.Linear's weight is packed into panels of 32 output columns and a micro-kernel keeps an
8 x 32 output tile in 16 AVX-512 registers (GCC vector extensions, so it compiles on any target;
4 x 16 with AVX2) while it runs over k; the bias is added as the tile is stored. Each output row
(2 KiB at the CPU size, still in L2) is then normalised in place: mean and variance as exact two-pass
omp simd reductions, then one sweep of (y * rstd - mean * rstd) * weight + bias. Eager PyTorch runs
MKL's addmm (which on AMD CPUs does not take its AVX-512 path) and then layer_norm into a second
allocation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

// layer_norm(x @ w^T + b) over the last dimension, for nn.Linear's w (n, k) and b (n).
at::Tensor linear_layernorm(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in,
                            const at::Tensor& norm_w, const at::Tensor& norm_b, double eps) {
  const int64_t n = w_in.size(0);
  TORCH_CHECK(norm_w.numel() == n && norm_b.numel() == n && norm_w.scalar_type() == at::kFloat &&
                  norm_b.scalar_type() == at::kFloat,
              "linear_layernorm: the norm's weight and bias must have ", n, " float32 elements");
  at::Tensor y = linear(x_in, w_in, b_in, kBias, c10::nullopt);
  const at::Tensor nw = norm_w.contiguous();
  const at::Tensor nb = norm_b.contiguous();
  const int64_t rows = n == 0 ? 0 : y.numel() / n;
  const float eps_f = static_cast<float>(eps);
  float* out = y.data_ptr<float>();
  layernorm_rows(out, out, rows, n, nw.data_ptr<float>(), nb.data_ptr<float>(), eps_f);  // in place
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        # The reference's modules and names, so the harness hands over the reference's weights.
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.LayerNorm(out_features)
        self.kernels = load_cpp_extension(
            "linear_layernorm", _CPP, ["linear_layernorm"], snippets=["linear", "layernorm"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin, norm = self.linear, self.norm
        return self.kernels.linear_layernorm(x, lin.weight, lin.bias, norm.weight, norm.bias, norm.eps)
