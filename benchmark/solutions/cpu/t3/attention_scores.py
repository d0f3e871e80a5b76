"""Attention probabilities in one fused C++ kernel: register-tiled q @ k^T, softmax in L1, one write.

Technique: one thread takes a whole (batch, head) and packs k transposed (a k^T panel, zero-padded to
whole tiles). For each tile of 8 query rows (pre-multiplied by the scale), a register-tiled
micro-kernel (8 rows x 2 vectors of accumulators with AVX-512, broadcast FMAs; GCC vector extensions,
so it compiles on any target) produces the scores into a small buffer that stays in L1; the row
softmax runs there (max, inlined polynomial exp, sum) and the probabilities are written to the output
once. Eager PyTorch writes the (batch, heads, seq, seq) scores from a batched GEMM, then a scaled copy,
then the softmax: three passes over (and three allocations of) the largest tensor of the case.
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
#include <vector>

// softmax(scale * q @ k^T) over the keys, for q and k of shape (batch, heads, seq, dim).
at::Tensor attention_probs(const at::Tensor& q_in, const at::Tensor& k_in, double scale) {
  TORCH_CHECK(q_in.dim() == 4 && k_in.dim() == 4 && q_in.size(3) == k_in.size(3),
              "expected (batch, heads, seq, dim) q and k");
  TORCH_CHECK(q_in.size(0) == k_in.size(0) && q_in.size(1) == k_in.size(1),
              "q and k differ in batch or heads");
  TORCH_CHECK(q_in.scalar_type() == at::kFloat && k_in.scalar_type() == at::kFloat, "expected float32");
  const int64_t heads = q_in.size(0) * q_in.size(1);
  const int64_t seq_q = q_in.size(2);
  const int64_t seq_k = k_in.size(2);
  const int64_t dim = q_in.size(3);
  const at::Tensor q = q_in.contiguous();
  const at::Tensor k = k_in.contiguous();
  at::Tensor out = at::empty({q_in.size(0), q_in.size(1), seq_q, seq_k}, q.options());
  const float s = static_cast<float>(scale);
  const int64_t key_cols = (seq_k + kCols - 1) / kCols * kCols;  // key panel padded to whole tiles

#pragma omp parallel if (heads * seq_q * seq_k >= (1 << 15))
  {
    // Per-thread panels, reused for every head this thread takes.
    std::vector<float> qp(kRows * dim, 0.0f);     // one tile of scaled queries (zero rows past the end)
    std::vector<float> kt(dim * key_cols, 0.0f);  // keys, transposed: kt[d][j]
    std::vector<float> scores(kRows * key_cols);  // one tile of scores
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < heads; ++bh) {
      const float* qh = q.data_ptr<float>() + bh * seq_q * dim;
      const float* kh = k.data_ptr<float>() + bh * seq_k * dim;
      float* oh = out.data_ptr<float>() + bh * seq_q * seq_k;
      for (int64_t j = 0; j < seq_k; ++j)
        for (int64_t d = 0; d < dim; ++d) kt[d * key_cols + j] = kh[j * dim + d];
      for (int64_t i0 = 0; i0 < seq_q; i0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, seq_q - i0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t d = 0; d < dim; ++d) qp[r * dim + d] = qh[(i0 + r) * dim + d] * s;
        for (int64_t j0 = 0; j0 < seq_k; j0 += kCols) {
          qk_tile(qp.data(), dim, kt.data(), key_cols, j0, scores.data(), key_cols);
        }
        for (int64_t r = 0; r < rows; ++r)  // each row of scores is still in L1
          softmax_row(scores.data() + r * key_cols, oh + (i0 + r) * seq_k, seq_k);
      }
    }
  }
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = 1.0 / head_dim**0.5
        self.kernels = load_cpp_extension(
            "attention_scores", _CPP, ["attention_probs"], snippets=["attention", "softmax"]
        )

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.kernels.attention_probs(q, k, self.scale)
