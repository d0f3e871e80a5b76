// log in float32 as a branch-free Cephes-style polynomial that vectorises: cheaper per element than
// SLEEF's logf, about 1 ulp.

#include "bits.h"

#include <cmath>
#include <cstdint>

// log(x) to about 1 ulp, branch-free: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by the Cephes
// polynomial in f = m - 1, and e * ln2 added in two parts. Subnormals are scaled by 2^23 first; the
// special values (0, negatives, inf, NaN) are patched in at the end, as IEEE log defines them.
static inline float log_f(float x) {
  const bool subnormal = x < 1.17549435e-38f;  // also true for 0 and negatives, patched below
  const float xs = subnormal ? x * 8388608.0f : x;
  const int32_t bits = float_to_bits(xs);
  int32_t e = ((bits >> 23) & 0xff) - 127 - (subnormal ? 23 : 0);
  float m = bits_to_float((bits & 0x007fffff) | 0x3f800000);  // mantissa in [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  e = high ? e + 1 : e;
  const float f = m - 1.0f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f + -1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f + -1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f + -1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f + -2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float ef = static_cast<float>(e);
  float y = p * f * z + ef * -2.12194440e-4f - 0.5f * z;
  y = f + y + ef * 0.693359375f;
  y = x == 0.0f ? -INFINITY : y;
  y = x < 0.0f ? NAN : y;
  y = x == INFINITY ? x : y;
  return x != x ? x : y;
}
