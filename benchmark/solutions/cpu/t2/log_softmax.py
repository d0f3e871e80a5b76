"""Row log-softmax with the row held in L1: one read from memory, an inlined polynomial exp, one write.

Technique: a thread takes whole rows (32 KiB at the CPU size, which fits L1); the max and the sum of
exp(x - max) are omp simd reductions over the cached row and the output x - (max + log(sum)) is written
in a third vectorised sweep, so memory sees one read and one write per element. ATen makes the same
sweeps with SLEEF's exp, which costs more per element than the branch-free polynomial here (about
1 ulp). The subtraction is done once per element against a per-row constant, so the large negative
log-probabilities keep full float32 accuracy.
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
#include <limits>

static inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, sizeof i); return i; }
static inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, sizeof f); return f; }

// exp(x) for x <= 0 (a logit minus its row max), about 1 ulp, branch-free: x = n*ln2 + r with
// |r| <= ln2/2 (ln2 split in two so r is exact), exp(r) by the Cephes degree-6 polynomial, and 2^n
// added straight into the exponent bits. Only the low end needs care: below ln(FLT_MIN) the result
// would be subnormal and is returned as 0. NaN stays NaN (it fails both compares).
static inline float exp_nonpos(float x) {
  constexpr float kLnFltMin = -87.33654f;
  const float xc = x < kLnFltMin ? kLnFltMin : x;
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
  const float result = bits_to_float(float_to_bits(p) + (static_cast<int32_t>(nf) << 23));
  return x < kLnFltMin ? 0.0f : result;
}

at::Tensor log_softmax_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "log_softmax: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < cols; ++j) m = in[j] > m ? in[j] : m;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; ++j) sum += exp_nonpos(in[j] - m);
    const float shift = m + std::log(sum);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = in[j] - shift;
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.log_softmax_forward(x)


@functools.cache
def _kernels() -> Any:
    return _load_extension("log_softmax", _CPP, ["log_softmax_forward"])


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
