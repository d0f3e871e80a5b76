"""Shared fixtures: a tiny suite on disk and a writer for candidate files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A shell without job control starts background commands with SIGINT ignored (`cmd &`, nohup), and
# an ignored signal stays ignored in every child: the tests that press Ctrl-C on a harness process
# would then wait for nothing. Handled signals are reset to the default in children, so this fixes it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SCALE_CASE = '''
"""Scales a vector by two: a tiny test case."""
import torch
import torch.nn as nn

n = 4096
SIZES = {"gpu": {"n": 1 << 20}}


class Model(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return [2.0]
'''

LINEAR_CASE = '''
"""A small linear layer followed by ReLU."""
import torch
import torch.nn as nn

batch, dim = 32, 64


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return torch.relu(self.fc(x))


def get_inputs():
    return [torch.randn(batch, dim)]


def get_init_inputs():
    return [dim]
'''

NPU_CASE = '''
"""Needs torch_npu."""
import torch
import torch_npu
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x


def get_inputs():
    return [torch.randn(4)]


def get_init_inputs():
    return []
'''

GOOD_SCALE = '''
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x + x
'''

GOOD_LINEAR = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return torch.clamp_min(torch.addmm(self.fc.bias, x, self.fc.weight.t()), 0)
'''

FAST_ARGS = ["--budget-ms", "5", "--rounds", "2", "--trials", "2", "--timeout", "120"]


@pytest.fixture(autouse=True, scope="session")
def _private_build_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the harness's build cache of the whole session out of the account's ~/.cache."""
    import os

    os.environ.setdefault("HARNESS_BUILD_CACHE", str(tmp_path_factory.mktemp("build-cache")))


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A suite with t1/scale, t2/linear_relu and t1/npu_only."""
    root = tmp_path / "suite"
    (root / "t1").mkdir(parents=True)
    (root / "t2").mkdir()
    (root / "t1" / "scale.py").write_text(SCALE_CASE)
    (root / "t1" / "npu_only.py").write_text(NPU_CASE)
    (root / "t2" / "linear_relu.py").write_text(LINEAR_CASE)
    return root


@pytest.fixture
def solutions(tmp_path: Path) -> Path:
    root = tmp_path / "solutions"
    (root / "t1").mkdir(parents=True)
    (root / "t2").mkdir()
    (root / "t1" / "scale.py").write_text(GOOD_SCALE)
    (root / "t2" / "linear_relu.py").write_text(GOOD_LINEAR)
    return root


@pytest.fixture
def write_candidate(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, source: str) -> Path:
        path = tmp_path / "candidates" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    return write


def run_harness(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600):
    """Run the real CLI in a subprocess; returns the CompletedProcess."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
