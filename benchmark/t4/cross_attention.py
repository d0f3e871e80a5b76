"""Multi-head cross-attention: queries from x, keys and values from a longer context, in float32.

Inputs are x (batch_size, query_len, embed_dim) and context (batch_size, context_len, embed_dim)
float32; the output is (batch_size, query_len, embed_dim). Parameters: nn.Linear q projection,
fused nn.Linear k/v projection of the context, nn.Linear output projection; num_heads heads, no mask.
The attention matrix is rectangular (query_len x context_len), as in an encoder-decoder model.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 4
query_len = 128
context_len = 256
embed_dim = 256
num_heads = 4

SIZES = {
    "gpu": {"batch_size": 4, "query_len": 1024, "context_len": 2048, "embed_dim": 1024, "num_heads": 16},
    "npu": {"batch_size": 4, "query_len": 1024, "context_len": 2048, "embed_dim": 1024, "num_heads": 16},
}


class Model(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(embed_dim, embed_dim)
        self.kv = nn.Linear(embed_dim, 2 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, sq, e = x.shape
        sk = context.shape[1]
        h = self.num_heads
        q = self.q(x).view(b, sq, h, e // h).transpose(1, 2)
        k, v = self.kv(context).view(b, sk, 2, h, e // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, sq, e))


def get_inputs():
    return [torch.randn(batch_size, query_len, embed_dim), torch.randn(batch_size, context_len, embed_dim)]


def get_init_inputs():
    return [embed_dim, num_heads]


def get_flops():
    projections = 2 * batch_size * (2 * query_len + 2 * context_len) * embed_dim * embed_dim
    attention = 4 * batch_size * query_len * context_len * embed_dim
    return projections + attention
