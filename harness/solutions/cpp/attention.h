// The score tile of the attention kernels: q @ k^T for one tile of query rows against a packed,
// transposed key panel, with the register tiling of simd_tile.h.

#include "simd_tile.h"

#include <cstdint>

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
