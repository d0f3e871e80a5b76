"""Mean cross-entropy fused into one read of the logits: row max, log-sum-exp and the target gather.

Technique: each thread takes whole rows; a row of logits (32 KiB at the CPU size) is read from memory
once and its max and sum of exp(x - max) are then taken from L1, vectorised (omp simd reductions,
inlined polynomial exp). The loss of a row is max + log(sum) - x[target]; the per-row losses are summed
in a fixed order in double, so the result does not depend on the thread count. Eager PyTorch runs
log_softmax, which writes the full (batch, classes) matrix of log-probabilities, then nll_loss, which
reads one value per row of it: this kernel never writes that matrix.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>
#include <vector>

// nll_loss's default: targets equal to -100 contribute nothing and are not counted in the mean.
constexpr int64_t kIgnoreIndex = -100;

at::Tensor cross_entropy_forward(const at::Tensor& logits_in, const at::Tensor& targets_in) {
  TORCH_CHECK(logits_in.dim() == 2 && logits_in.scalar_type() == at::kFloat,
              "cross_entropy: logits must be (batch, classes) float32");
  TORCH_CHECK(targets_in.dim() == 1 && targets_in.scalar_type() == at::kLong,
              "cross_entropy: targets must be (batch,) int64");
  TORCH_CHECK(targets_in.size(0) == logits_in.size(0), "cross_entropy: batch sizes differ");
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const int64_t rows = logits.size(0);
  const int64_t classes = logits.size(1);
  const float* x = logits.data_ptr<float>();
  const int64_t* t = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK(t[i] == kIgnoreIndex || (t[i] >= 0 && t[i] < classes),
                "cross_entropy: target ", t[i], " out of bounds");
  }

  std::vector<double> loss(rows, 0.0);
#pragma omp parallel for schedule(static) if (rows * classes >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    if (t[i] == kIgnoreIndex) continue;
    const float* row = x + i * classes;
    const float m = row_max(row, classes);
    const float s = sum_exp_shifted(row, classes, m);
    loss[i] = static_cast<double>(m) + std::log(static_cast<double>(s)) - static_cast<double>(row[t[i]]);
  }
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (t[i] == kIgnoreIndex) continue;
    total += loss[i];
    ++counted;
  }
  at::Tensor out = at::empty({}, logits.options());
  out.data_ptr<float>()[0] = static_cast<float>(total / static_cast<double>(counted));  // 0/0 = NaN, as torch
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = load_cpp_extension("cross_entropy", _CPP, ["cross_entropy_forward"], snippets=["softmax"])

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.kernels.cross_entropy_forward(logits, targets)
