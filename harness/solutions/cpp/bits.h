// Float <-> bit pattern, the standard-conforming way (memcpy compiles to a register move).

#include <cstdint>
#include <cstring>

static inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, sizeof i); return i; }
static inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
