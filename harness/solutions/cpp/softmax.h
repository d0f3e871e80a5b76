// The row steps of the softmax family (softmax, log-softmax, cross-entropy, attention probabilities)
// over a row held in L1, vectorised with omp simd reductions and the exp for arguments <= 0.

#include "exp.h"

#include <cstdint>
#include <limits>

// max of a row (-inf for an empty one); the reduction reassociates across lanes, which max allows.
static inline float row_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// sum of exp(x[j] - m) over a row, for m its max (so every argument is <= 0).
static inline float sum_exp_shifted(const float* x, int64_t n, float m) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += exp_nonpos(x[j] - m);
  return sum;
}

// out = softmax(x) over a row: exp(x - max) written while it is summed, then scaled by 1 / sum while
// the row is still in L1.
static inline void softmax_row(const float* x, float* out, int64_t n) {
  const float m = row_max(x, n);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const float e = exp_nonpos(x[j] - m);
    out[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] *= inv;
}
