// nn.Linear as a register-tiled GEMM with fused epilogues (bias; bias + GELU; bias + residual), exposed
// as the op `linear(x, weight, bias or None, epilogue, residual or None)`. The weight is packed per call
// into panels of kCols output columns; panels are processed in blocks of about kBlockBytes so the
// packed weights stay in L2; a finished tile gets its epilogue while it is in L1.

#include "simd_tile.h"
#include "erf.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <vector>

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
            for (int64_t c = 0; c < cols; ++c) o[c] = gelu_f(tile[r][c] + bp[c]);
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
