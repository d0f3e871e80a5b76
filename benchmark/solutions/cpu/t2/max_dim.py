"""Column max (amax over dim 0) with each thread streaming a contiguous band of rows.

Technique: the rows are split into one contiguous band per thread; a thread keeps a running maximum
for a block of 2048 columns (8 KiB, resident in L1) and folds every row of its band into it with a
vectorised, NaN-propagating max, so the input is read once, sequentially. The per-thread partial
maxima are merged at the end. ATen reduces over the outer dimension through its generic strided
reduction, which touches the matrix in a far less cache- and SIMD-friendly order.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

_CPP = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

// max that propagates NaN like torch.amax: once a NaN is seen it stays (both compares are false).
static inline float max_nan(float acc, float v) { return (v > acc || v != v) ? v : acc; }

// Columns per block: the running maxima of one block (32 KiB) stay in L1 while a band of rows streams
// past; the CPU-size rows fit in one block, so the band is read strictly sequentially.
constexpr int64_t kColumnBlock = 8192;

at::Tensor max_dim0_forward(const at::Tensor& input) {
  TORCH_CHECK(input.dim() == 2 && input.scalar_type() == at::kFloat,
              "max_dim: expected a 2-D float32 tensor");
  TORCH_CHECK(input.size(0) > 0, "max_dim: cannot reduce over an empty dimension");
  const at::Tensor x = input.contiguous();
  const int64_t rows = x.size(0);
  const int64_t cols = x.size(1);
  const float* src = x.data_ptr<float>();
  const bool parallel = rows * cols >= (1 << 15);
  const int threads = parallel ? omp_get_max_threads() : 1;
  std::vector<float> partial(static_cast<size_t>(threads) * cols, -std::numeric_limits<float>::infinity());

#pragma omp parallel num_threads(threads) if (parallel)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt;
    const int64_t r1 = rows * (t + 1) / nt;
    float* acc_row = partial.data() + t * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += kColumnBlock) {
      const int64_t width = std::min(kColumnBlock, cols - c0);
      float* acc = acc_row + c0;
      int64_t r = r0;
      // Four rows per sweep: one load and store of the accumulator per four input loads.
      for (; r + 4 <= r1; r += 4) {
        const float* a = src + r * cols + c0;
        const float* b = a + cols;
        const float* c = b + cols;
        const float* d = c + cols;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          float m = acc[j];  // a chain, not a tree: GCC if-converts (and so vectorises) only this form
          m = max_nan(m, a[j]);
          m = max_nan(m, b[j]);
          m = max_nan(m, c[j]);
          m = max_nan(m, d[j]);
          acc[j] = m;
        }
      }
      for (; r < r1; ++r) {
        const float* in = src + r * cols + c0;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) acc[j] = max_nan(acc[j], in[j]);
      }
    }
  }

  at::Tensor out = at::empty({cols}, x.options());
  float* dst = out.data_ptr<float>();
  std::copy(partial.begin(), partial.begin() + cols, dst);
  for (int t = 1; t < threads; ++t) {
    const float* p = partial.data() + static_cast<int64_t>(t) * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dst[j] = max_nan(dst[j], p[j]);
  }
  return out;
}
"""


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernels = _kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.max_dim0_forward(x)


@functools.cache
def _kernels() -> Any:
    return _load_extension("max_dim", _CPP, ["max_dim0_forward"])


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
