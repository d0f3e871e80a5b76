"""Static flags (harness.analysis.static_flags): what a reviewer looks for, found in the source without running it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.analysis.static_flags import FLAG_IDS, Flag, parse_strict, scan_file, scan_source, strict_failures

SUITE = Path(__file__).resolve().parents[1] / "benchmark"

SOFTMAX_CASE = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        y = torch.empty_like(x)
        return torch.softmax(x.view(-1, x.shape[-1]), dim=-1).reshape(x.shape)
'''

LINEAR_CASE = '''
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, n)

    def forward(self, x):
        return self.fc(x).relu()
'''


def scan(source: str, reference: str | None = SOFTMAX_CASE) -> list[Flag]:
    return scan_source(textwrap.dedent(source), reference)


def ids(flags: list[Flag]) -> set[str]:
    return {f.id for f in flags}


def _sets(name: str) -> list[Path]:
    return sorted((SUITE / "solutions" / name).glob("t*/*.py"))


@pytest.mark.parametrize("solution", _sets("reference"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_reference_solution_is_flagged_as_a_torch_fallback(solution: Path) -> None:
    flags = scan_file(solution, SUITE / solution.parent.name / solution.name)
    assert ids(flags) == {"torch_fallback"}  # and no harness_import: harness.solutions is for solutions


@pytest.mark.parametrize("solution", _sets("triton"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_triton_solutions_get_no_flags(solution: Path) -> None:
    assert scan_file(solution, SUITE / solution.parent.name / solution.name) == []


@pytest.mark.parametrize("solution", _sets("cpu"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cpu_solutions_are_flagged_only_for_one_torch_attention(solution: Path) -> None:
    # Their build lock lives in harness.solutions.load_cpp_extension now, so no file access is flagged.
    flags = scan_file(solution, SUITE / solution.parent.name / solution.name)
    expected = {"torch_fallback"} if solution.stem == "transformer_lm" else set()
    assert ids(flags) == expected
    if solution.stem == "transformer_lm":  # it runs F.scaled_dot_product_attention, as its reference does
        assert "attention" in next(f.message for f in flags if f.id == "torch_fallback")


@pytest.mark.parametrize(
    ("source", "flag", "line"),
    [
        ("import torch\ns = torch.cuda.Stream()\n", "stream", 2),
        ("import torch\nwith torch.cuda.stream(torch.cuda.Stream()):\n    pass\n", "stream", 2),
        ("from torch import npu\nnpu.set_stream(None)\n", "stream", 2),
        ("import threading\n", "thread", 1),
        ("from concurrent.futures import ThreadPoolExecutor\n", "thread", 1),
        ("import subprocess\n", "subprocess", 1),
        ("import os\nos.system('ls')\n", "subprocess", 2),
        ("import os\nos.execvp('ls', ['ls'])\n", "subprocess", 2),
        ("import multiprocessing as mp\n", "subprocess", 1),
        ("import ctypes\n", "ctypes", 1),
        ("from harness.worker import Guard\n", "harness_import", 1),
        ("import harness.sandbox.correctness\n", "harness_import", 1),
        ("import importlib\nimportlib.import_module('harness.evaluation.evaluate')\n", "harness_import", 2),
        ("__import__('time')\n", "timing_import", 1),
        ("import time\n", "timing_import", 1),
        ("from timeit import default_timer\n", "timing_import", 1),
        ("import torch\ne = torch.cuda.Event(enable_timing=True)\n", "timing_import", 2),
        ("import socket\n", "network", 1),
        ("from urllib.request import urlopen\n", "network", 1),
        ("import requests\n", "network", 1),
        ("open('/tmp/x', 'w').write('1')\n", "file_access", 1),
        ("data = open('/tmp/answers.bin', 'rb').read()\n", "file_access", 1),
        ("from pathlib import Path\nPath('x').write_text('1')\n", "file_access", 2),
        ("import os\nos.remove('x')\n", "file_access", 2),
        ("import torch\ntorch.save({}, 'x.pt')\n", "file_access", 2),
        ("import shutil\n", "file_access", 1),
        ("x = (\n", "unparsable", 1),
    ],
)
def test_each_flag_is_found_with_its_line(source: str, flag: str, line: int) -> None:
    found = [f for f in scan(source, None) if f.id == flag]
    assert found and found[0].line == line, scan(source, None)


def test_native_sources_are_scanned_for_streams_threads_and_clocks() -> None:
    flags = scan(
        '''
        CUDA = r"""
        #include <torch/extension.h>
        // a comment naming cudaStreamCreate does not count
        void go() {
          cudaStream_t s; cudaStreamCreate(&s);
          std::thread worker([]{});
          auto t0 = std::chrono::steady_clock::now();
        }
        """
        ''',
        None,
    )
    assert ids(flags) == {"stream", "thread", "timing_import"}
    assert next(f for f in flags if f.id == "stream").line == 6


def test_openmp_and_aten_allocation_in_native_sources_are_not_flagged() -> None:
    source = '''
        CPP = r"""
        #include <ATen/ops/empty_like.h>
        at::Tensor f(const at::Tensor& x) {
          at::Tensor y = at::empty_like(x);
        #pragma omp parallel for
          for (int i = 0; i < 4; ++i) {}
          return y;
        }
        """
        class ModelNew:
            def forward(self, x):
                return x
        '''
    assert scan(source) == []


def test_a_torch_fallback_is_found_in_any_spelling_and_through_helpers() -> None:
    for call in ("torch.softmax(x, -1)", "F.softmax(x, dim=-1)", "x.softmax(-1)", "torch.nn.functional.softmax(x, -1)"):
        flags = scan(
            f"""
            import torch
            import torch.nn.functional as F

            def helper(x):
                return {call}

            class ModelNew(torch.nn.Module):
                def forward(self, x):
                    return helper(x)
            """
        )
        assert ids(flags) == {"torch_fallback"}, call
        assert "softmax" in flags[0].message and flags[0].line == 6


def test_trivial_helpers_and_kernels_are_not_a_fallback() -> None:
    flags = scan(
        """
        import torch
        import triton
        import triton.language as tl

        @triton.jit
        def _kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
            x = tl.load(x_ptr + tl.arange(0, BLOCK))
            tl.store(y_ptr + tl.arange(0, BLOCK), tl.exp(x) / tl.sum(tl.exp(x), axis=0))

        class ModelNew(torch.nn.Module):
            def forward(self, x):
                y = torch.empty_like(x)
                _kernel[(x.shape[0],)](x.contiguous(), y, x.shape[-1], BLOCK=1024)
                return y.view(x.shape).reshape(-1, x.shape[-1]).reshape(x.shape)
        """
    )
    assert flags == []


def test_calling_the_references_module_is_a_fallback_but_using_its_weights_is_not() -> None:
    called = """
        import torch.nn as nn
        class ModelNew(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.fc = nn.Linear(n, n)
            def forward(self, x):
                return self.fc(x).clamp_min(0)
        """
    weights = """
        import torch
        import torch.nn as nn
        class ModelNew(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.fc = nn.Linear(n, n)
                self.kernels = load_kernels()
            def forward(self, x):
                k = self.kernels
                return k.linear(x, self.fc.weight, self.fc.bias).relu_()
        """
    flags = scan(called, LINEAR_CASE)
    assert ids(flags) == {"torch_fallback"} and "matmul" in flags[0].message  # nn.Linear and F.linear alike
    flags = scan(weights, LINEAR_CASE)
    assert ids(flags) == {"torch_fallback"} and "relu" in flags[0].message and "matmul" not in flags[0].message


@pytest.mark.parametrize(
    "source",
    [
        "from harness.solutions import reference_model\nModelNew = reference_model(__file__)\n",
        "class Model:\n    pass\nModelNew = Model\n",
        "import torch\nclass Model(torch.nn.Module):\n    pass\nclass ModelNew(Model):\n    pass\n",
        "class Model:\n    pass\nclass ModelNew(Model):\n    def forward(self, x):\n"
        "        return super().forward(x)\n",
    ],
)
def test_a_candidate_that_is_the_reference_is_a_fallback(source: str) -> None:
    assert ids(scan(source)) == {"torch_fallback"}


def test_without_the_case_source_there_is_no_fallback_check() -> None:
    source = "import torch\nclass ModelNew:\n    def forward(self, x):\n        return torch.softmax(x, -1)\n"
    assert scan(source, None) == []


def test_one_flag_per_id_and_line_in_line_order() -> None:
    flags = scan("import time, time\nimport socket\nimport threading\n", None)
    assert [(f.id, f.line) for f in flags] == [("timing_import", 1), ("network", 2), ("thread", 3)]


def test_strict_turns_chosen_flags_into_a_failure_reason() -> None:
    flags = [Flag("thread", "imports threading", 3), Flag("file_access", "opens a file for writing", 9)]
    assert strict_failures(flags, set()) is None
    assert strict_failures(flags, {"stream"}) is None
    reason = strict_failures(flags, {"thread", "stream"})
    assert reason is not None and "thread (line 3: imports threading)" in reason and "file_access" not in reason
    assert parse_strict("thread, stream") == {"thread", "stream"}
    assert parse_strict("all") == set(FLAG_IDS)
    with pytest.raises(ValueError, match="unknown flag id"):
        parse_strict("threads")


def test_flags_round_trip_through_json() -> None:
    flag = Flag("network", "imports socket", 4)
    assert Flag.from_json(flag.to_json()) == flag


def test_strict_turns_a_flag_into_a_failure_and_an_unknown_id_into_a_usage_error(
    suite: Path, write_candidate: Callable[[str, str], Path]
) -> None:
    from tests.conftest import FAST_ARGS, run_harness

    candidate = write_candidate(
        "threaded",
        """
        import threading
        import torch.nn as nn


        class ModelNew(nn.Module):
            def __init__(self, factor):
                super().__init__()
                threading.Thread(target=lambda: None).start()

            def forward(self, x):
                return x + x
        """,
    )
    case = str(suite / "t1/scale.py")
    proc = run_harness("eval", case, str(candidate), "--json", "--strict", "thread", *FAST_ARGS)
    result = json.loads(proc.stdout)["result"]
    assert proc.returncode == 1 and result["status"] == "fail" and "thread" in result["reason"]
    assert run_harness("eval", case, str(candidate), "--strict", "nosuchflag").returncode == 2
