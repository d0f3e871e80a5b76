"""exp(x) and log(y) in one parallel pass over both inputs, with inlined polynomial exp and log.

Technique: both maps run in the same loop (one fork/join, four streams), and both transcendentals are
branch-free Cephes-style polynomials that the compiler vectorises 16 lanes wide: exp by range reduction
to |r| <= ln2/2, log by splitting off the exponent bits and a degree-9 polynomial in the mantissa, each
about 1 ulp. Eager PyTorch runs two kernels that call SLEEF's expf/logf per vector, which is slower
per element than these polynomials, so the reference is compute-bound on two cores.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

static inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, sizeof i); return i; }
static inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, sizeof f); return f; }

// exp(x) to about 1 ulp, branch-free: x = n*ln2 + r with |r| <= ln2/2 (ln2 split in two so r is exact),
// exp(r) by the Cephes degree-6 polynomial, 2^n applied as two factors so that neither exponent field
// overflows: results near FLT_MAX and gradual underflow come out right. The clamp keeps NaN (both
// compares are false) and sends +-inf to values whose exp is inf and 0.
static inline float exp_f(float x) {
  const float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
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
  const int32_t n = static_cast<int32_t>(nf);
  const int32_t n1 = n >> 1;
  const int32_t n2 = n - n1;
  return p * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
}

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

// Below this many elements a fork/join costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

std::vector<at::Tensor> exp_log_forward(const at::Tensor& x_in, const at::Tensor& y_in) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && y_in.scalar_type() == at::kFloat,
              "exp_log: expected float32");
  TORCH_CHECK(x_in.numel() == y_in.numel(), "exp_log: x and y must have the same number of elements");
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  at::Tensor ex = at::empty_like(x);
  at::Tensor ly = at::empty_like(y);
  const float* xs = x.data_ptr<float>();
  const float* ys = y.data_ptr<float>();
  float* exd = ex.data_ptr<float>();
  float* lyd = ly.data_ptr<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    exd[i] = exp_f(xs[i]);
    lyd[i] = log_f(ys[i]);
  }
  return {ex, ly};
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ex, ly = self.kernels.exp_log_forward(x, y)
        return ex, ly


@functools.cache
def _kernels() -> Any:
    return _load_extension("exp_log", _CPP, ["exp_log_forward"])


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
