// erf and the exact (erf) GELU in float32, branch-free so that loops over them vectorise.

// erf on the float range: z * P(z^2) / Q(z^2) with z clamped to [-4, 4], where erf(z) rounds to +-1
// (degree 13/8 minimax, about 1 ulp: the approximation Eigen and XLA use). Branch-free so the loop
// vectorises; NaN passes through (both clamp compares are false for NaN).
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

// nn.GELU() (approximate="none"): 0.5 * x * (1 + erf(x / sqrt(2))).
static inline float gelu_f(float x) { return 0.5f * x * (1.0f + erf_f(x * 0.70710678118654752f)); }
