"""Row-wise inclusive prefix sum with an in-register SIMD scan and a carried running total.

Technique: a thread takes whole rows. Each 8-float vector is scanned in registers (three shift-and-add
steps, Hillis-Steele), then the running total of the row so far is added and the vector's own total
(its last lane, broadcast) is added to the running total. The loop-carried dependency is a single
vector add per 8 elements instead of one scalar add per element. Written with GCC vector extensions,
so it compiles on any target. ATen's CPU cumsum walks each row with a scalar loop accumulating in
double. Accumulating in float32 is accurate to well within the tolerance at these lengths
(error about sqrt(n) ulp of the running sum).
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

#include <cstdint>
#include <cstring>

typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

// Inclusive scan of 8 lanes: add the vector shifted up by 1, 2 and 4 lanes (zeros shifted in).
static inline f8 scan8(f8 v) {
  const f8 zero = {};
  v += __builtin_shuffle(zero, v, (i8){0, 8, 9, 10, 11, 12, 13, 14});
  v += __builtin_shuffle(zero, v, (i8){0, 1, 8, 9, 10, 11, 12, 13});
  v += __builtin_shuffle(zero, v, (i8){0, 1, 2, 3, 8, 9, 10, 11});
  return v;
}

at::Tensor cumsum_forward(const at::Tensor& input) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, "cumsum: expected float32, got ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t cols = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const int64_t vec_cols = cols - cols % 8;

#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * cols;
    float* out = dst + i * cols;
    f8 carry = {};  // the row's running total, in every lane
    for (int64_t j = 0; j < vec_cols; j += 8) {
      f8 v;
      std::memcpy(&v, in + j, sizeof v);  // unaligned load
      v = scan8(v);
      const f8 total = __builtin_shuffle(v, (i8){7, 7, 7, 7, 7, 7, 7, 7});
      v += carry;
      carry += total;
      std::memcpy(out + j, &v, sizeof v);
    }
    float acc = carry[0];
    for (int64_t j = vec_cols; j < cols; ++j) {
      acc += in[j];
      out[j] = acc;
    }
  }
  return y;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.cumsum_forward(x)


@functools.cache
def _kernels() -> Any:
    return _load_extension("cumsum", _CPP, ["cumsum_forward"])


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
