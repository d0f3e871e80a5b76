// exp in float32 as branch-free Cephes-style polynomials that vectorise: cheaper per element than
// SLEEF's expf, about 1 ulp. exp_f is the general one; exp_nonpos is the 1.5x faster variant for
// arguments <= 0 (a logit minus its row max) of the softmax family.

#include "bits.h"

#include <cstdint>

// The common core: for x already clamped to the finite range, n = round(x / ln2) (returned in nf) and
// exp(r) for r = x - n*ln2, |r| <= ln2/2 (ln2 split in two so r is exact), by the Cephes degree-6
// polynomial: exp(x) = exp(r) * 2^n, with 2^n left to the caller (the two variants apply it differently).
static inline float exp_reduced(float x, float& nf) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  nf = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * (r * r) + r + 1.0f;
}

// exp(x) to about 1 ulp, branch-free, 2^n applied as two factors so that neither exponent field
// overflows: results near FLT_MAX and gradual underflow come out right. The clamp keeps NaN (both
// compares are false) and sends +-inf to values whose exp is inf and 0.
static inline float exp_f(float x) {
  const float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
  float nf;
  const float p = exp_reduced(xc, nf);
  const int32_t n = static_cast<int32_t>(nf);
  const int32_t n1 = n >> 1;
  const int32_t n2 = n - n1;
  return p * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
}

// exp(x) for x <= 0 (a logit minus its row max), about 1 ulp, branch-free, with 2^n added straight
// into the exponent bits. Only the low end needs care: below ln(FLT_MIN) the result would be
// subnormal and is returned as 0. NaN stays NaN (it fails both compares).
static inline float exp_nonpos(float x) {
  constexpr float kLnFltMin = -87.33654f;
  const float xc = x < kLnFltMin ? kLnFltMin : x;
  float nf;
  const float p = exp_reduced(xc, nf);
  const float result = bits_to_float(float_to_bits(p) + (static_cast<int32_t>(nf) << 23));
  return x < kLnFltMin ? 0.0f : result;
}
