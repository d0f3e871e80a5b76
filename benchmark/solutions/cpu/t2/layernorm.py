"""LayerNorm with the row held in L1: exact two-pass statistics, then one fused normalise-and-affine sweep.

Technique: a thread takes whole rows; the mean and then the variance around it are omp simd reductions
over the cached row (two passes in L1 are exact and cheaper than Welford's per-element divisions), and
the output is written in one sweep as x * a + b with per-row a = rstd and b = -mean * rstd, then times
weight plus bias. Memory sees one read and one write per element. Compared with ATen's layer_norm,
which also makes one memory pass, the saving is the simpler inner loops and no Welford combine steps.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

# The kernel is the shared layer norm (harness/solutions/cpp/layernorm.h); only the bindings' header here.
_CPP = r"""
#include <torch/csrc/utils/pybind.h>
"""


class ModelNew(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=eps)  # same parameter names: gets the reference's weights
        self.kernels = load_cpp_extension("layernorm", _CPP, ["layernorm"], snippets=["layernorm"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.layernorm(x, self.norm.weight, self.norm.bias, self.norm.eps)
