"""Pre-norm MLP block in C++: LayerNorm, then register-tiled GEMMs with GELU and the residual add fused.

Technique: the layer norm is one C++ pass (rows held in L1, exact two-pass statistics, affine fused).
fc1 and fc2 are a register-tiled GEMM (weights packed into panels of 32 output columns, an 8 x 32
output tile in 16 AVX-512 registers; GCC vector extensions, so it compiles on any target) whose
epilogues finish each tile while it is in L1: bias + GELU (rational erf, about 1 ulp) for fc1, bias +
the residual x for fc2. The block writes three tensors (normalised x, hidden, output) where eager
writes six, and its GEMMs run at AVX-512 speed where eager's MKL addmm, on AMD CPUs, does not.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// Layer norm over the last dimension; a thread takes whole rows, each held in L1 for its three sweeps.
at::Tensor layernorm(const at::Tensor& input, const at::Tensor& weight_in, const at::Tensor& bias_in,
                     double eps) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "layernorm: expected float32, got ", input.scalar_type());
  const int64_t cols = input.size(-1);
  TORCH_CHECK(weight_in.numel() == cols && bias_in.numel() == cols,
              "layernorm: weight and bias must have ", cols, " elements");
  const at::Tensor x = input.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor bias = bias_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const float inv_cols = 1.0f / static_cast<float>(cols);
  const float eps_f = static_cast<float>(eps);

#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; ++j) sum += in[j];
    const float mean = sum * inv_cols;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < cols; ++j) {
      const float d = in[j] - mean;
      sq += d * d;
    }
    const float rstd = 1.0f / std::sqrt(sq * inv_cols + eps_f);
    const float shift = -mean * rstd;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = (in[j] * rstd + shift) * w[j] + b[j];
  }
  return y;
}

// One SIMD register of floats, and the register tile: kRows x kVecs accumulators plus the kVecs
// loaded vectors must fit the register file (32 registers with AVX-512, 16 with AVX2).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRows = 8;  // rows of x per register tile
#else
constexpr int kLanes = 8;
constexpr int kRows = 4;
#endif
constexpr int kVecs = 2;  // vectors of output columns per register tile
constexpr int kCols = kVecs * kLanes;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));

static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// Packs W (n x k, row-major: nn.Linear's weight) into panels of kCols output columns, each k x kCols
// and contiguous, zero-padded past n: the micro-kernel then reads one panel row per step.
static void pack_weight(const float* w, int64_t n, int64_t k, float* packed) {
  const int64_t panels = (n + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (n * k >= (1 << 16))
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = packed + p * k * kCols;
    for (int64_t c = 0; c < kCols; ++c) {
      const int64_t col = p * kCols + c;
      if (col < n) {
        const float* src = w + col * k;
        for (int64_t d = 0; d < k; ++d) dst[d * kCols + c] = src[d];
      } else {
        for (int64_t d = 0; d < k; ++d) dst[d * kCols + c] = 0.0f;
      }
    }
  }
}

// acc = x_tile (kRows x k, row stride lda) @ panel (k x kCols): kVecs loads, kRows broadcasts and
// kRows * kVecs FMAs per step of k, with every accumulator in a register.
static inline void micro_kernel(const float* x, int64_t lda, const float* panel, int64_t k,
                                vf acc[kRows][kVecs]) {
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVecs; ++v) acc[r][v] = vf{};
  for (int64_t d = 0; d < k; ++d) {
    vf b[kVecs];
    for (int v = 0; v < kVecs; ++v) b[v] = load(panel + d * kCols + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float a = x[r * lda + d];
      for (int v = 0; v < kVecs; ++v) acc[r][v] += b[v] * a;
    }
  }
}

// erf on the float range: z * P(z^2) / Q(z^2) with z clamped to [-4, 4], where erf(z) rounds to +-1.
// Branch-free so the loop vectorises; NaN passes through (both clamp compares are false for NaN).
static inline float erf_f(float x) {
  const float z = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float z2 = z * z;
  float p = -2.72614225801306e-10f;
  p = p * z2 + 2.77068142495902e-08f;
  p = p * z2 + -2.10102402082508e-06f;
  p = p * z2 + -5.69250639462346e-05f;
  p = p * z2 + -7.34990630326855e-04f;
  p = p * z2 + -2.95459980854025e-03f;
  p = p * z2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * z2 + -2.13374055278905e-04f;
  q = q * z2 + -1.68282697438203e-03f;
  q = q * z2 + -7.37332916720468e-03f;
  q = q * z2 + -1.42647390514189e-02f;
  return z * p / q;
}

// What happens to a finished tile of x @ w^T before it is stored: each adds the bias (zeros when the
// layer has none); GELU and the residual add are the epilogues of fc1 and of fc2 / the attention
// projection, fused here so that no intermediate is written just to be read back.
enum Epilogue : int64_t { kBias = 0, kBiasGelu = 1, kBiasResidual = 2 };

// Panels whose packed weights together stay around this size (half of a 1 MiB L2 or more); the row
// tiles stream over one such block before moving to the next.
constexpr int64_t kBlockBytes = 512 * 1024;

// out (m x n) = epilogue(x (m x k) @ w^T + b) with w (n x k), row-major, for any m, n, k.
static void linear_into(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* b,
                        Epilogue epilogue, const float* residual, float* out) {
  const int64_t panels = (n + kCols - 1) / kCols;
  std::vector<float> packed(panels * k * kCols);
  pack_weight(w, n, k, packed.data());
  std::vector<float> bias(panels * kCols, 0.0f);
  if (b != nullptr) std::copy(b, b + n, bias.begin());
  const int64_t tiles = (m + kRows - 1) / kRows;
  const int64_t block = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, k * kCols * sizeof(float)));

  for (int64_t p0 = 0; p0 < panels; p0 += block) {
    const int64_t p1 = std::min(panels, p0 + block);
#pragma omp parallel for schedule(static) if (m * n * k >= (1 << 18))
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t i0 = t * kRows;
      const int64_t rows = std::min<int64_t>(kRows, m - i0);
      const float* xt = x + i0 * k;
      std::vector<float> tail;  // the last tile, zero-padded to kRows rows
      if (rows < kRows) {
        tail.assign(kRows * k, 0.0f);
        std::copy(xt, xt + rows * k, tail.begin());
        xt = tail.data();
      }
      float tile[kRows][kCols];
      vf acc[kRows][kVecs];
      for (int64_t p = p0; p < p1; ++p) {
        micro_kernel(xt, k, packed.data() + p * k * kCols, k, acc);
        for (int r = 0; r < kRows; ++r)
          for (int v = 0; v < kVecs; ++v) store(&tile[r][v * kLanes], acc[r][v]);
        const int64_t j0 = p * kCols;
        const int64_t cols = std::min<int64_t>(kCols, n - j0);
        const float* bp = bias.data() + j0;
        for (int64_t r = 0; r < rows; ++r) {  // the epilogue, vectorised over the tile's row in L1
          float* o = out + (i0 + r) * n + j0;
          if (epilogue == kBiasGelu) {
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) {
              const float v = tile[r][c] + bp[c];
              o[c] = 0.5f * v * (1.0f + erf_f(v * 0.70710678118654752f));
            }
          } else if (epilogue == kBiasResidual) {
            const float* res = residual + (i0 + r) * n + j0;
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) o[c] = res[c] + (tile[r][c] + bp[c]);
          } else {
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) o[c] = tile[r][c] + bp[c];
          }
        }
      }
    }
  }
}

// nn.Linear over the last dimension of x, with one of the epilogues above.
at::Tensor linear(const at::Tensor& x_in, const at::Tensor& w_in, const c10::optional<at::Tensor>& b_in,
                  int64_t epilogue, const c10::optional<at::Tensor>& residual_in) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && w_in.scalar_type() == at::kFloat,
              "linear: expected float32");
  const int64_t k = x_in.size(-1);
  const int64_t n = w_in.size(0);
  TORCH_CHECK(w_in.dim() == 2 && w_in.size(1) == k, "linear: weight must be (out_features, ", k, ")");
  TORCH_CHECK(epilogue >= kBias && epilogue <= kBiasResidual, "linear: unknown epilogue ", epilogue);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor w = w_in.contiguous();
  at::Tensor b;
  if (b_in.has_value()) {
    b = b_in->contiguous();
    TORCH_CHECK(b.scalar_type() == at::kFloat && b.numel() == n,
                "linear: bias must have ", n, " float32 elements");
  }
  const int64_t m = k == 0 ? 0 : x.numel() / k;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  at::Tensor out = at::empty(shape, x.options());
  at::Tensor residual;
  if (epilogue == kBiasResidual) {
    TORCH_CHECK(residual_in.has_value() && residual_in->sizes() == out.sizes() &&
                    residual_in->scalar_type() == at::kFloat,
                "linear: the residual must have the output's shape");
    residual = residual_in->contiguous();
  }
  const float* bias = b.defined() ? b.data_ptr<float>() : nullptr;
  const float* res = residual.defined() ? residual.data_ptr<float>() : nullptr;
  linear_into(x.data_ptr<float>(), m, k, w.data_ptr<float>(), n, bias, static_cast<Epilogue>(epilogue), res,
              out.data_ptr<float>());
  return out;
}
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
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernels
        h = k.layernorm(x, self.norm.weight, self.norm.bias, self.norm.eps)
        h = k.linear(h, self.fc1.weight, self.fc1.bias, _BIAS_GELU, None)
        return k.linear(h, self.fc2.weight, self.fc2.bias, _BIAS_RESIDUAL, x)


@functools.cache
def _kernels() -> Any:
    return _load_extension("layernorm_mlp_residual", _CPP, ["layernorm", "linear"])


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
