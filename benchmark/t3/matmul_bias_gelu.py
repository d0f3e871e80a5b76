"""Linear layer followed by exact (erf) GELU: gelu(x @ W^T + b) in float32, a transformer MLP's up-projection.

Input x is (batch_size, in_features) float32; W and b belong to an nn.Linear(in_features,
out_features); the output is (batch_size, out_features) float32. Like matmul_bias_relu but with a
transcendental epilogue and a wide output (out_features = 4 * in_features at the GPU size).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 1024
in_features = 256
out_features = 1024

SIZES = {
    "gpu": {"batch_size": 4096, "in_features": 2048, "out_features": 8192},
    "npu": {"batch_size": 4096, "in_features": 2048, "out_features": 8192},
}


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.linear(x))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


def get_flops():
    # GEMM, bias add, and about 5 operations per element for GELU.
    return 2 * batch_size * in_features * out_features + 6 * batch_size * out_features
