"""A real Triton kernel as the candidate, run on the CPU through Triton's interpreter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import FAST_ARGS, run_harness

pytest.importorskip("triton")

TRITON_SCALE = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def scale_kernel(x_ptr, out_ptr, factor, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x * factor, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        scale_kernel[(triton.cdiv(n, 1024),)](x, out, self.factor, n, BLOCK=1024)
        return out
"""


def test_triton_kernel_in_interpreter_mode_passes(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    candidate = write_candidate("triton_scale", TRITON_SCALE)
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(candidate), "--json", *FAST_ARGS, env={"TRITON_INTERPRET": "1"}
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass"
    assert result["correctness"]["max_abs_error"] == 0.0


def test_wrong_triton_kernel_fails(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    candidate = write_candidate("triton_wrong", TRITON_SCALE.replace("x * factor", "x * factor + 1.0"))
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(candidate), "--json", *FAST_ARGS, env={"TRITON_INTERPRET": "1"}
    )
    assert json.loads(proc.stdout)["result"]["status"] == "fail"
