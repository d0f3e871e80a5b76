"""RMS normalization with a learned scale of a (tokens, hidden) bfloat16 matrix, computed in float32.

Input and output are (tokens, hidden) bfloat16; the weight is (hidden,) bfloat16, randomly
initialised around 1. y = x / sqrt(mean(x^2) + eps) * weight, with the statistics and the product in
float32 and one rounding to bfloat16 at the end (as in LLaMA-style models). ATOL = RTOL = 2e-2 allows
about two bfloat16 ulps, for kernels that round the normalised value before scaling it.
"""
import torch
import torch.nn as nn

tokens = 2048
hidden = 1024
eps = 1e-6

SIZES = {
    "gpu": {"tokens": 65536, "hidden": 4096},
    "npu": {"tokens": 65536, "hidden": 4096},
}

ATOL = 2e-2
RTOL = 2e-2


class Model(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter((1.0 + 0.1 * torch.randn(hidden)).to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        inv_rms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (xf * inv_rms * self.weight.float()).to(torch.bfloat16)


def get_inputs():
    return [torch.randn(tokens, hidden, dtype=torch.bfloat16)]


def get_init_inputs():
    return [hidden, eps]


def get_flops():
    # square, sum, normalise, scale.
    return 4 * tokens * hidden
