"""Pre-norm transformer encoder layer: x + attn(ln1(x)), then + mlp(ln2(x)), in float32.

Input x is (batch_size, seq_len, embed_dim) float32; the output has the same shape. The attention is
multi-head self-attention without a mask (fused QKV nn.Linear, scaled dot-product attention, output
nn.Linear); the MLP is nn.Linear(embed_dim, ffn_dim), exact GELU, nn.Linear(ffn_dim, embed_dim).
Dropout is omitted (inference).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 2
seq_len = 128
embed_dim = 256
num_heads = 4
ffn_dim = 1024

SIZES = {
    "gpu": {"batch_size": 4, "seq_len": 1024, "embed_dim": 1024, "num_heads": 16, "ffn_dim": 4096},
    "npu": {"batch_size": 4, "seq_len": 1024, "embed_dim": 1024, "num_heads": 16, "ffn_dim": 4096},
}


class Model(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(embed_dim)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, e = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, s, 3, self.num_heads, e // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, s, e))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def get_inputs():
    return [torch.randn(batch_size, seq_len, embed_dim)]


def get_init_inputs():
    return [embed_dim, num_heads, ffn_dim]


def get_flops():
    tokens = batch_size * seq_len
    projections = 2 * tokens * embed_dim * 4 * embed_dim
    attention = 4 * batch_size * seq_len * seq_len * embed_dim
    mlp = 2 * 2 * tokens * embed_dim * ffn_dim
    return projections + attention + mlp
