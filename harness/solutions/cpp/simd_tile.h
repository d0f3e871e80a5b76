// The register tile of the GEMM-like micro-kernels (GCC vector extensions, not intrinsics, so the same
// source compiles for any target): a vector of floats, and how many of them one tile keeps.

#include <cstring>

// One SIMD register of floats, and the register tile: kRows x kVecs accumulators plus the kVecs
// loaded vectors must fit the register file (32 registers with AVX-512, 16 with AVX2).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRows = 8;  // rows per register tile (rows of x, or query rows)
#else
constexpr int kLanes = 8;
constexpr int kRows = 4;
#endif
constexpr int kVecs = 2;  // vectors of output columns (or of keys, or of head_dim) per register tile
constexpr int kCols = kVecs * kLanes;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));

static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
