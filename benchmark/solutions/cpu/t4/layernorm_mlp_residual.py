"""Pre-norm MLP block in C++: LayerNorm, then register-tiled GEMMs with GELU and the residual add fused.

Technique: the layer norm is one C++ pass (rows held in L1, exact two-pass statistics, affine fused).
fc1 and fc2 are a register-tiled GEMM (weights packed into panels of 32 output columns, an 8 x 32
output tile in 16 AVX-512 registers; GCC vector extensions, so it compiles on any target) whose
epilogues finish each tile while it is in L1: bias + GELU (rational erf, about 1 ulp) for fc1, bias +
the residual x for fc2. The block writes three tensors (normalised x, hidden, output) where eager
writes six, and its GEMMs run at AVX-512 speed where eager's MKL addmm, on AMD CPUs, does not.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.solutions import load_cpp_extension

# The kernels are the shared layer norm and GEMM (harness/solutions/cpp/layernorm.h, linear.h); only
# the bindings' header here.
_CPP = r"""
#include <torch/csrc/utils/pybind.h>
"""

# Epilogues of the C++ `linear` (its enum Epilogue).
_BIAS, _BIAS_GELU, _BIAS_RESIDUAL = 0, 1, 2


class ModelNew(nn.Module):
    def __init__(self, hidden: int, ffn_dim: int):
        super().__init__()
        # The reference's modules and names, so the harness hands over the reference's weights.
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, hidden)
        self.kernels = load_cpp_extension(
            "layernorm_mlp_residual", _CPP, ["layernorm", "linear"], snippets=["linear", "layernorm"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernels
        h = k.layernorm(x, self.norm.weight, self.norm.bias, self.norm.eps)
        h = k.linear(h, self.fc1.weight, self.fc1.bias, _BIAS_GELU, None)
        return k.linear(h, self.fc2.weight, self.fc2.bias, _BIAS_RESIDUAL, x)
