"""Workers use a fixed malloc policy, so a fresh candidate process allocates like the long-lived reference."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

# Allocates 8 MiB with malloc and says whether it came from the heap ([heap] in /proc/self/maps)
# or from a fresh mapping (glibc's default for blocks over its 128 KiB starting threshold).
_PROBE = """
import ctypes, os, sys
from harness.sandbox.process import _fixed_allocator
_fixed_allocator()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
address = libc.malloc(8 << 20)
for line in open("/proc/self/maps"):
    span, *rest = line.split()
    low, high = (int(x, 16) for x in span.split("-"))
    if low <= address < high:
        print("heap" if rest[-1] == "[heap]" else "mapping")
        break
"""


def _where(env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, env=env, check=True, timeout=120
    )
    return proc.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc policy")
def test_large_blocks_come_from_the_heap_in_a_worker() -> None:
    import os

    base = {k: v for k, v in os.environ.items() if k != "HARNESS_MALLOC"}
    assert _where({**base, "HARNESS_MALLOC": "default"}) == "mapping"  # glibc's own policy
    assert _where(base) == "heap"
