"""Build and load a solution's C++ kernels, with shared C++ snippets, for every file of the ``cpu`` set.

Each ``cpu`` solution used to carry its own copy of this loader and of the C++ it shares with others
(the register-tiled GEMM, the exp/log/erf polynomials, the softmax and layer-norm row steps). One copy
lives here instead: a solution passes its own C++ and the names of the snippets it uses
(``harness/solutions/cpp/<name>.h``), and :func:`load_cpp_extension` builds the full text.

Why the snippets are pasted in, not ``#include``-d: the harness's build cache keys a candidate's
builds by the SHA-256 of the solution *file* (``harness.evaluation.build_cache``), and restores them into the next
scratch folder of the same file. Code the file pulls in from elsewhere is not in that key. So the build
name hashes the full text that is compiled (snippets included): after a snippet changes, the name
changes, and a restored build of the old text is never found, let alone imported. torch would notice
a change in a build it runs itself (``load_inline`` rewrites ``main.cpp`` only when the text differs,
and ninja recompiles when it, or a header in the compiler's dependency file, is newer than the
object), but the fast path below imports a finished library without running torch or ninja: only
the name can tell an old build from a new one.

The rest is the behaviour the per-file helper had, unchanged: flags, ISA level, where builds live,
the sandbox (a candidate can only read builds made outside its scratch folder), and the locking.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import platform
import pwd
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

SNIPPET_DIR = Path(__file__).resolve().parent / "cpp"
# How a snippet names another it needs; the line is replaced by that snippet's text (once per build).
_INCLUDE = re.compile(r'^#include "(\w+)\.h"\s*$')
# Loaded extensions of this process by build name: one import per library, however often asked for.
_LOADED: dict[str, ModuleType] = {}


def snippet_names() -> list[str]:
    """The shared C++ snippets a solution may name (``harness/solutions/cpp/*.h`` without the suffix)."""
    return sorted(path.stem for path in SNIPPET_DIR.glob("*.h"))


def cpp_source(case: str, source: str, snippets: Sequence[str] = ()) -> str:
    """The full C++ text of a solution's extension: the named snippets, then ``source``.

    Each snippet comes with the snippets it ``#include``-s (quoted includes of ``<name>.h``), every one
    once and before its users. ``#line`` directives make compiler errors name the snippet file and its
    line (``harness/solutions/cpp/linear.h:42``), and ``<case>.cpp`` with the line within ``source``.
    The labels are fixed strings, not paths, so the text (and the build name) is the same wherever the
    package is installed.
    """
    parts: list[str] = []
    done: set[str] = set()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise ValueError(f"{case}: C++ snippets include each other: {' -> '.join((*chain, name))}")
        path = SNIPPET_DIR / f"{name}.h"
        if not name.isidentifier() or not path.is_file():
            known = ", ".join(snippet_names())
            raise ValueError(f"{case}: no C++ snippet {name!r} in harness.solutions (known: {known})")
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            match = _INCLUDE.match(line)
            if match:
                add(match.group(1), (*chain, name))
                lines[i] = f"// {match.group(1)}.h: pasted above"  # same line count: #line stays right
        done.add(name)
        parts.append(f'#line 1 "harness/solutions/cpp/{name}.h"\n' + "\n".join(lines) + "\n")

    for name in snippets:
        add(name, ())
    parts.append(f'#line 1 "{case}.cpp"\n{source}')
    return "".join(parts)


def compile_flags() -> list[str]:
    """Compiler flags: -O3 and OpenMP without -ffast-math, plus the ISA level ATen dispatches to here.

    Without -ffast-math NaN/Inf propagate as in ATen; -fno-math-errno/-fno-trapping-math are what ATen
    itself is built with, and vectorisation comes from ``omp simd`` pragmas, not reassociation. The ISA
    level (not -march=native) is one any machine of that level that shares the cache can run.
    """
    import torch

    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if platform.machine() in ("x86_64", "AMD64"):
        isa = {"AVX512": ["-march=x86-64-v4", "-mprefer-vector-width=512"], "AVX2": ["-march=x86-64-v3"]}
        flags += isa.get(torch.backends.cpu.get_cpu_capability(), [])
    return flags


def build_name(case: str, full_source: str, functions: Sequence[str], flags: Sequence[str]) -> str:
    """``kh_<case>_<hash>``, the hash over everything that shapes the binary.

    That is the full source (snippets included), the bound functions (they become the module's
    binding code), the flags (so the ISA level), and the torch and Python versions: an edited kernel
    or snippet gets a new folder instead of a stale library, and machines sharing a cache never load
    each other's ISA level.
    """
    import torch

    parts = [full_source, *flags, torch.__version__, sys.version, "functions:", *functions]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"kh_{case}_{digest[:12]}"


def build_roots() -> list[Path]:
    """Where finished builds are looked for, in order: $TORCH_EXTENSIONS_DIR when set, then the account's
    ~/.cache/kernel-harness/torch_extensions.

    The home comes from the password database: the harness points HOME and TORCH_EXTENSIONS_DIR into a
    candidate's scratch folder and refuses writes outside it, so a sandboxed candidate can still *read*
    a build made outside (e.g. by studies/cpu_solutions.py).
    """
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:  # an anonymous container user
        home = Path.home()
    roots = [Path(os.environ["TORCH_EXTENSIONS_DIR"])] if os.environ.get("TORCH_EXTENSIONS_DIR") else []
    roots.append(home / ".cache" / "kernel-harness" / "torch_extensions")
    return roots


def load_cpp_extension(
    case: str, source: str, functions: Sequence[str], *, snippets: Sequence[str] = ()
) -> ModuleType:
    """The compiled kernels of a solution: a finished build if one exists, else a fresh one (seconds).

    ``case`` names the build (``kh_<case>_<hash>``), ``source`` is the solution's own C++ (after the
    snippets), ``functions`` the C++ functions to bind, ``snippets`` the shared C++ it uses (see
    :func:`cpp_source`). A build lives in ``<root>/<name>/``; roots are :func:`build_roots`, and a new
    build goes to the first writable one, else to TMPDIR. A failed compile raises torch's error (with
    the compiler's output), which the harness reports as the candidate's error.
    """
    full_source = cpp_source(case, source, snippets)
    flags = compile_flags()
    name = build_name(case, full_source, functions, flags)
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = _find_or_build(case, name, full_source, list(functions), flags)
    return module


def _find_or_build(case: str, name: str, full_source: str, functions: list[str], flags: list[str]) -> ModuleType:
    roots = build_roots()
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
                full_source,
                functions=functions,
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build),
                # Per-operator ATen headers instead of torch/extension.h halve the cold compile.
                no_implicit_headers=True,
                with_pytorch_error_handling=False,
            )
    raise RuntimeError(f"{case}: no writable folder to build the C++ kernels in")
