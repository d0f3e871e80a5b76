"""Multi-head self-attention (no mask): fused QKV projection, scaled dot-product attention, output projection.

Input x is (batch_size, seq_len, embed_dim) float32; the output has the same shape. Parameters: an
nn.Linear(embed_dim, 3 * embed_dim) for Q, K, V and an nn.Linear(embed_dim, embed_dim) for the output,
with num_heads heads of embed_dim / num_heads each. Two GEMMs around a flash-attention-shaped core.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 4
seq_len = 128
embed_dim = 256
num_heads = 4

SIZES = {
    "gpu": {"batch_size": 4, "seq_len": 1024, "embed_dim": 1024, "num_heads": 16},
    "npu": {"batch_size": 4, "seq_len": 1024, "embed_dim": 1024, "num_heads": 16},
}


class Model(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, e = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.num_heads, e // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, s, head_dim)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, s, e))


def get_inputs():
    return [torch.randn(batch_size, seq_len, embed_dim)]


def get_init_inputs():
    return [embed_dim, num_heads]


def get_flops():
    tokens = batch_size * seq_len
    projections = 2 * tokens * embed_dim * 4 * embed_dim
    attention = 4 * batch_size * seq_len * seq_len * embed_dim
    return projections + attention
