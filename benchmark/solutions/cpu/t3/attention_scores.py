"""Attention probabilities in one fused C++ kernel: register-tiled q @ k^T, softmax in L1, one write.

Technique: one thread takes a whole (batch, head) and packs k transposed (a k^T panel, zero-padded to
whole tiles). For each tile of 8 query rows (pre-multiplied by the scale), a register-tiled
micro-kernel (8 rows x 2 vectors of accumulators with AVX-512, broadcast FMAs; GCC vector extensions,
so it compiles on any target) produces the scores into a small buffer that stays in L1; the row
softmax runs there (max, inlined polynomial exp, sum) and the probabilities are written to the output
once. Eager PyTorch writes the (batch, heads, seq, seq) scores from a batched GEMM, then a scaled copy,
then the softmax: three passes over (and three allocations of) the largest tensor of the case.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

// One SIMD register of floats, and the register tile: kRows x kVecs accumulators plus the kVecs
// loaded vectors must fit the register file (32 registers with AVX-512, 16 with AVX2).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRows = 8;  // query rows per register tile
#else
constexpr int kLanes = 8;
constexpr int kRows = 4;
#endif
constexpr int kVecs = 2;  // vectors of keys (QK) or of head_dim (PV) per register tile
constexpr int kCols = kVecs * kLanes;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));

static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

static inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, sizeof i); return i; }
static inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, sizeof f); return f; }

// exp(x) for x <= 0 (a logit minus its row max), about 1 ulp, branch-free: x = n*ln2 + r with
// |r| <= ln2/2 (ln2 split in two so r is exact), exp(r) by the Cephes degree-6 polynomial, and 2^n
// added straight into the exponent bits. Only the low end needs care: below ln(FLT_MIN) the result
// would be subnormal and is returned as 0. NaN stays NaN (it fails both compares).
static inline float exp_nonpos(float x) {
  constexpr float kLnFltMin = -87.33654f;
  const float xc = x < kLnFltMin ? kLnFltMin : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float nf = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const float result = bits_to_float(float_to_bits(p) + (static_cast<int32_t>(nf) << 23));
  return x < kLnFltMin ? 0.0f : result;
}

// scores[r][j0 .. j0 + kCols) = sum_d q[r][d] * kt[d][j0 ..]: the accumulators stay in registers while d
// runs over the head dimension; each step is kVecs loads, kRows broadcasts and kRows * kVecs FMAs.
static inline void qk_tile(const float* q, int64_t dim, const float* kt, int64_t kt_stride, int64_t j0,
                           float* scores, int64_t s_stride) {
  vf acc[kRows][kVecs] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const float* krow = kt + d * kt_stride + j0;
    vf kv[kVecs];
    for (int v = 0; v < kVecs; ++v) kv[v] = load(krow + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float qv = q[r * dim + d];
      for (int v = 0; v < kVecs; ++v) acc[r][v] += kv[v] * qv;
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVecs; ++v) store(scores + r * s_stride + j0 + v * kLanes, acc[r][v]);
}

// softmax(scale * q @ k^T) over the keys, for q and k of shape (batch, heads, seq, dim).
at::Tensor attention_probs(const at::Tensor& q_in, const at::Tensor& k_in, double scale) {
  TORCH_CHECK(q_in.dim() == 4 && k_in.dim() == 4 && q_in.size(3) == k_in.size(3),
              "expected (batch, heads, seq, dim) q and k");
  TORCH_CHECK(q_in.size(0) == k_in.size(0) && q_in.size(1) == k_in.size(1),
              "q and k differ in batch or heads");
  TORCH_CHECK(q_in.scalar_type() == at::kFloat && k_in.scalar_type() == at::kFloat, "expected float32");
  const int64_t heads = q_in.size(0) * q_in.size(1);
  const int64_t seq_q = q_in.size(2);
  const int64_t seq_k = k_in.size(2);
  const int64_t dim = q_in.size(3);
  const at::Tensor q = q_in.contiguous();
  const at::Tensor k = k_in.contiguous();
  at::Tensor out = at::empty({q_in.size(0), q_in.size(1), seq_q, seq_k}, q.options());
  const float s = static_cast<float>(scale);
  const int64_t key_cols = (seq_k + kCols - 1) / kCols * kCols;  // key panel padded to whole tiles

#pragma omp parallel if (heads * seq_q * seq_k >= (1 << 15))
  {
    // Per-thread panels, reused for every head this thread takes.
    std::vector<float> qp(kRows * dim, 0.0f);     // one tile of scaled queries (zero rows past the end)
    std::vector<float> kt(dim * key_cols, 0.0f);  // keys, transposed: kt[d][j]
    std::vector<float> scores(kRows * key_cols);  // one tile of scores
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < heads; ++bh) {
      const float* qh = q.data_ptr<float>() + bh * seq_q * dim;
      const float* kh = k.data_ptr<float>() + bh * seq_k * dim;
      float* oh = out.data_ptr<float>() + bh * seq_q * seq_k;
      for (int64_t j = 0; j < seq_k; ++j)
        for (int64_t d = 0; d < dim; ++d) kt[d * key_cols + j] = kh[j * dim + d];
      for (int64_t i0 = 0; i0 < seq_q; i0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, seq_q - i0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t d = 0; d < dim; ++d) qp[r * dim + d] = qh[(i0 + r) * dim + d] * s;
        for (int64_t j0 = 0; j0 < seq_k; j0 += kCols) {
          qk_tile(qp.data(), dim, kt.data(), key_cols, j0, scores.data(), key_cols);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const float* sr = scores.data() + r * key_cols;
          float* o = oh + (i0 + r) * seq_k;
          float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
          for (int64_t j = 0; j < seq_k; ++j) m = sr[j] > m ? sr[j] : m;
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < seq_k; ++j) {
            const float e = exp_nonpos(sr[j] - m);
            o[j] = e;
            sum += e;
          }
          const float inv = 1.0f / sum;
#pragma omp simd
          for (int64_t j = 0; j < seq_k; ++j) o[j] *= inv;  // the row is still in L1
        }
      }
    }
  }
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = 1.0 / head_dim**0.5
        self.kernels = _kernels()

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.kernels.attention_probs(q, k, self.scale)


@functools.cache
def _kernels() -> Any:
    return _load_extension("attention_scores", _CPP, ["attention_probs"])


# --- build helper: the same in every cpu solution, so that each file can be loaded on its own -------


def _load_extension(case: str, source: str, functions: list[str]) -> Any:
    """The compiled kernels: a finished build if one exists, else a fresh one (tens of seconds).

    A build lives in <root>/<name>/, where the name hashes everything that shapes the binary (source,
    flags, torch and Python versions): an edited kernel gets a new folder instead of a stale library,
    and machines sharing a cache never load each other's ISA level. Roots: $TORCH_EXTENSIONS_DIR when
    set, then ~/.cache/kernel-harness/torch_extensions of the account (found through the password
    database: the harness points HOME and TORCH_EXTENSIONS_DIR into a candidate's scratch folder and
    refuses writes outside it, so a sandboxed candidate can only *read* a build made outside, e.g. by
    benchmarks/cpu_solutions.py). Builds go to the first root that is writable, else to TMPDIR.
    """
    import fcntl
    import hashlib
    import importlib.util
    import os
    import platform
    import pwd
    import sys
    import tempfile
    from pathlib import Path

    # -O3 without -ffast-math: NaN/Inf must propagate as in ATen. -fno-math-errno/-fno-trapping-math
    # are what ATen itself is built with; vectorisation comes from `omp simd` pragmas, not reassociation.
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if platform.machine() in ("x86_64", "AMD64"):
        # The ISA level ATen dispatches to on this machine (not -march=native: the binary must run
        # on any machine of that level that shares the cache).
        isa = {"AVX512": ["-march=x86-64-v4", "-mprefer-vector-width=512"], "AVX2": ["-march=x86-64-v3"]}
        flags += isa.get(torch.backends.cpu.get_cpu_capability(), [])
    digest = hashlib.sha256("\0".join([source, *flags, torch.__version__, sys.version]).encode()).hexdigest()
    name = f"kh_{case}_{digest[:12]}"
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:  # an anonymous container user
        home = Path.home()
    roots = [Path(os.environ["TORCH_EXTENSIONS_DIR"])] if os.environ.get("TORCH_EXTENSIONS_DIR") else []
    roots.append(home / ".cache" / "kernel-harness" / "torch_extensions")

    for root in roots:  # a finished build: import it directly (no compiler, no lock, nothing written)
        library = root / name / f"{name}.so"
        spec = importlib.util.spec_from_file_location(name, library) if library.is_file() else None
        if spec is not None and spec.loader is not None:
            try:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
            except (ImportError, OSError):  # torn by a killed build: build again below
                pass

    from torch.utils.cpp_extension import load_inline  # a tenth of a second: only when building

    for root in [*roots, Path(tempfile.gettempdir()) / "torch_extensions"]:
        build = root / name
        try:
            build.mkdir(parents=True, exist_ok=True)
            guard = open(build / "kh.flock", "w")  # held for the whole build
        except OSError:  # read-only (a sandboxed candidate, a read-only home): the next root
            continue
        with guard:
            # torch's build lock is a plain file that a killed build (a harness timeout) leaves behind;
            # later loads would wait on it forever. An flock dies with its holder: whoever holds it is
            # the only builder, so a torch lock found inside is stale.
            fcntl.flock(guard, fcntl.LOCK_EX)
            (build / "lock").unlink(missing_ok=True)
            return load_inline(
                name,
                source,
                functions=functions,
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build),
                # Per-operator ATen headers instead of torch/extension.h halve the cold compile.
                no_implicit_headers=True,
                with_pytorch_error_handling=False,
            )
    raise RuntimeError(f"{case}: no writable folder to build the C++ kernels in")
