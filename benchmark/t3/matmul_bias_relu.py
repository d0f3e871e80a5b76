"""Linear layer followed by ReLU: relu(x @ W^T + b) in float32.

Input x is (batch_size, in_features) float32; W (out_features, in_features) and b (out_features,) are
the parameters of an nn.Linear; the output is (batch_size, out_features) float32. The classic GEMM
epilogue fusion: bias and activation applied before the tile is written.
"""
import torch
import torch.nn as nn

batch_size = 1024
in_features = 512
out_features = 512

SIZES = {
    "gpu": {"batch_size": 4096, "in_features": 4096, "out_features": 4096},
    "npu": {"batch_size": 4096, "in_features": 4096, "out_features": 4096},
}


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


def get_flops():
    return 2 * batch_size * in_features * out_features + 2 * batch_size * out_features
