"""Small decoder-only LM in C++ kernels: register-tiled GEMMs with fused epilogues, norms, embeddings.

Technique: the model is the reference's module tree (same names, so it gets the same weights); only
forward changes. Every linear layer is one register-tiled GEMM (weights packed into panels of 32
output columns, an 8 x 32 output tile in 16 AVX-512 registers; GCC vector extensions, so it compiles
on any target) whose epilogue finishes each tile in L1: the bias, GELU after fc1 (rational erf) and
the residual add after proj and fc2, so no temporary is written just to be re-read. The token +
position embedding is one gather-and-add pass and each layer norm one pass over rows held in L1.
Causal attention stays ATen's scaled_dot_product_attention. Eager PyTorch runs MKL's addmm for every
linear layer (on AMD CPUs without its AVX-512 path) and a separate kernel for each elementwise step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.solutions import load_cpp_extension

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

// x[b, s, :] = tok[ids[b, s], :] + pos[s, :]: the two embedding lookups and their sum in one pass.
at::Tensor embed(const at::Tensor& ids_in, const at::Tensor& tok_in, const at::Tensor& pos_in) {
  TORCH_CHECK(ids_in.dim() == 2 && ids_in.scalar_type() == at::kLong,
              "embed: ids must be (batch, seq) int64");
  TORCH_CHECK(tok_in.scalar_type() == at::kFloat && pos_in.scalar_type() == at::kFloat,
              "embed: expected float32 tables");
  const at::Tensor ids = ids_in.contiguous();
  const at::Tensor tok = tok_in.contiguous();
  const at::Tensor pos = pos_in.contiguous();
  const int64_t batch = ids.size(0);
  const int64_t seq = ids.size(1);
  const int64_t vocab = tok.size(0);
  const int64_t dim = tok.size(1);
  TORCH_CHECK(pos.size(0) >= seq && pos.size(1) == dim, "embed: position table too small");
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch * seq; ++i) {
    TORCH_CHECK(id[i] >= 0 && id[i] < vocab, "embed: token id ", id[i], " out of range");
  }
  at::Tensor out = at::empty({batch, seq, dim}, tok.options());
  const float* t = tok.data_ptr<float>();
  const float* p = pos.data_ptr<float>();
  float* dst = out.data_ptr<float>();
#pragma omp parallel for schedule(static) if (batch * seq * dim >= (1 << 15))
  for (int64_t i = 0; i < batch * seq; ++i) {
    const float* tr = t + id[i] * dim;
    const float* pr = p + (i % seq) * dim;
    float* o = dst + i * dim;
#pragma omp simd
    for (int64_t j = 0; j < dim; ++j) o[j] = tr[j] + pr[j];
  }
  return out;
}

"""

# Epilogues of the C++ `linear` (its enum Epilogue).
_BIAS, _BIAS_GELU, _BIAS_RESIDUAL = 0, 1, 2


class Block(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(embed_dim)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, 4 * embed_dim)
        self.fc2 = nn.Linear(4 * embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, k: Any) -> torch.Tensor:
        b, s, e = x.shape
        h = k.layernorm(x, self.norm1.weight, self.norm1.bias, self.norm1.eps)
        qkv = k.linear(h, self.qkv.weight, self.qkv.bias, _BIAS, None)
        q, key, v = qkv.view(b, s, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, key, v, is_causal=True).transpose(1, 2).reshape(b, s, e)
        x = k.linear(attn, self.proj.weight, self.proj.bias, _BIAS_RESIDUAL, x)
        h = k.layernorm(x, self.norm2.weight, self.norm2.bias, self.norm2.eps)
        h = k.linear(h, self.fc1.weight, self.fc1.bias, _BIAS_GELU, None)
        return k.linear(h, self.fc2.weight, self.fc2.bias, _BIAS_RESIDUAL, x)


class ModelNew(nn.Module):
    def __init__(self, vocab_size: int, seq_len: int, embed_dim: int, num_heads: int, num_layers: int):
        super().__init__()
        # The reference's module tree and names, so the harness hands over the reference's weights.
        self.tok_emb = nn.Embedding(vocab_size, embed_dim)
        self.pos_emb = nn.Embedding(seq_len, embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size, bias=False)
        self.kernels = load_cpp_extension(
            "transformer_lm", _CPP, ["embed", "layernorm", "linear"], snippets=["linear", "layernorm"]
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        k = self.kernels
        x = k.embed(ids, self.tok_emb.weight, self.pos_emb.weight)
        for block in self.blocks:
            x = block(x, k)
        x = k.layernorm(x, self.norm.weight, self.norm.bias, self.norm.eps)
        return k.linear(x, self.head.weight, None, _BIAS, None)
