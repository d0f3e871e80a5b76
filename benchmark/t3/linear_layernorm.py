"""Linear layer followed by layer normalization of its output, in float32.

Input x is (batch_size, in_features) float32; an nn.Linear(in_features, out_features) and an
nn.LayerNorm(out_features) with random affine parameters; the output is (batch_size, out_features)
float32. Fusing the normalization into the GEMM needs whole output rows per tile (or a second pass).
"""
import torch
import torch.nn as nn

batch_size = 1024
in_features = 512
out_features = 512

SIZES = {
    "gpu": {"batch_size": 8192, "in_features": 2048, "out_features": 2048},
    "npu": {"batch_size": 8192, "in_features": 2048, "out_features": 2048},
}


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.LayerNorm(out_features)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


def get_flops():
    return 2 * batch_size * in_features * out_features + 9 * batch_size * out_features
