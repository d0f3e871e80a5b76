"""The misbehaving candidates of the fault-injection suite, each with the verdict it must get.

Every candidate solves a tiny case (``x * factor``; the deep clock cheat a heavier one) and misbehaves
in one way. Placeholders in the sources are filled in by the test: ```{marker}`` (an argument of
``sleep`` that tells leftover processes apart), ``{victim_case}`` (another case's file),
``{out_file}`` and ``{home_file}`` (paths outside the candidate's scratch folder), each also as
``{name!r}`` for a Python string literal.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

TINY_CASE = """
'''Scales a vector by a factor: the fault suite's tiny case.'''
import torch
import torch.nn as nn

n = 4096


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
"""

# A slow case: each call waits 25 ms (time, not arithmetic, so it is slow on every machine), so the
# time a clock-patching candidate hides is far above the noise of the supervisor's own clock.
HEAVY_CASE = """
'''Waits 25 ms, then doubles x: the fault suite's slow case.'''
import time

import torch
import torch.nn as nn

n = 4096


class Model(nn.Module):
    def forward(self, x):
        time.sleep(0.025)
        return x * 2


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
"""

_HEADER = """
import os
import signal
import subprocess
import sys
import time

import torch
import torch.nn as nn
"""


def _model(forward: str, prelude: str = "", init: str = "") -> str:
    """A solution file: ``prelude`` at import, then ModelNew with ``forward``'s body."""
    body = textwrap.indent(textwrap.dedent(forward).strip(), " " * 8)
    extra = textwrap.indent(textwrap.dedent(init).strip(), " " * 8) if init.strip() else ""
    return (
        _HEADER
        + textwrap.dedent(prelude)
        + f"""

class ModelNew(nn.Module):
    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor
{extra}

    def forward(self, x):
{body}
"""
    )


GOOD = _model("return x + x")


@dataclass(frozen=True)
class Fault:
    """One candidate: its source, the status it must get and words its reason must contain."""

    name: str
    source: str
    status: str
    reason: tuple[str, ...] = ()
    heavy: bool = False
    exit_code: int | None = None
    signal: str | None = None
    leaves_processes: bool = False
    notes: dict[str, str] = field(default_factory=dict)


FAULTS = [
    Fault("aaa_good_first", GOOD, "pass"),
    Fault("hang_sleep", _model("time.sleep(100000)"), "timeout", ("timeout",)),
    Fault(
        "hang_busy_ignoring_sigterm",
        _model("while True:\n    pass", prelude="signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"),
        "timeout",
        ("timeout",),
    ),
    Fault(
        "segfault_ctypes",
        _model("import ctypes\nprint('about to crash', flush=True)\nctypes.string_at(0)"),
        "error",
        ("killed by SIGSEGV", "correctness_check"),
        exit_code=-11,
        signal="SIGSEGV",
    ),
    Fault(
        "segfault_signal",
        _model("os.kill(os.getpid(), signal.SIGSEGV)"),
        "error",
        ("killed by SIGSEGV",),
        signal="SIGSEGV",
    ),
    Fault("exits_0_mid_trial", _model("os._exit(0)"), "error", ("exited with code 0",), exit_code=0),
    Fault("sys_exit_in_import", _model("return x + x", prelude="sys.exit(0)\n"), "error", ("SystemExit",)),
    Fault(
        "floods_output",
        _model(
            "return x + x",
            prelude="""
            chunk = b"y" * (1 << 20)
            for _ in range(200):
                os.write(1, chunk)
            for _ in range(100):
                os.write(2, chunk)
            os.write(1, b"\\nFLOOD-END\\n")
            """,
        ),
        "pass",
    ),
    Fault(
        "spawns_child",
        _model("return x + x", prelude='subprocess.Popen(["sleep", "{marker}"])\n'),
        "pass",
        leaves_processes=True,
    ),
    Fault(
        "spawns_double_forked_daemon",
        _model(
            "return x + x",
            prelude="""
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execvp("sleep", ["sleep", "{marker}"])
                os._exit(0)
            os.waitpid(pid, 0)
            """,
        ),
        "pass",
        leaves_processes=True,
    ),
    Fault(
        "spawns_env_cleared_session_leader",
        _model(
            "return x + x",
            prelude='p = subprocess.Popen(["env", "-i", "sleep", "{marker}"], start_new_session=True)\n'
            'print("SPAWNED", p.pid, flush=True)\n',
        ),
        "pass",
        leaves_processes=True,
    ),
    Fault("returns_nan", _model("return torch.full_like(x, float('nan'))"), "fail", ("NaN",)),
    Fault("wrong_dtype", _model("return (x + x).double()"), "fail", ("dtype",)),
    Fault("wrong_shape", _model("return (x + x)[:-1]"), "fail", ("shape",)),
    Fault(
        "tensor_subclass",
        _model("return (x + x).as_subclass(Sneaky)", prelude="class Sneaky(torch.Tensor):\n    pass\n"),
        "fail",
        ("plain torch.Tensor",),
    ),
    Fault("wrong_device", _model("return torch.empty_like(x, device='meta')"), "fail", ("device meta",)),
    Fault("mutates_inputs", _model("x.mul_(2.0)\nreturn x"), "fail", ("modified its input",)),
    Fault(
        "caches_by_identity",
        _model(
            """
            key = id(x)
            if key not in self.cache:
                self.cache[key] = (x, x * self.factor)
            return self.cache[key][1]
            """,
            init="self.cache = {}",
        ),
        "fail",
        ("cached result",),
    ),
    Fault(
        "caches_by_content_hash",
        _model(
            """
            import hashlib
            key = hashlib.sha256(x.numpy().tobytes()).hexdigest()
            if key not in self.cache:
                self.cache[key] = x * self.factor
            return self.cache[key]
            """,
            init="self.cache = {}",
        ),
        "fail",
        ("cached result",),
    ),
    Fault(
        "patches_torch_allclose",
        _model("return x + x", prelude="torch.allclose = lambda *a, **k: True\n"),
        "error",
        ("torch.allclose",),
    ),
    Fault(
        "patches_tensor_sub",
        _model("return x + x", prelude="torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)\n"),
        "error",
        ("torch.Tensor.__sub__",),
    ),
    Fault(
        "patches_perf_counter",
        _model("return x + x", prelude="time.perf_counter = lambda: 0.0\n"),
        "error",
        ("time.perf_counter",),
    ),
    Fault(
        "patches_perf_counter_ns",
        _model("return x + x", prelude="ns = time.perf_counter_ns\ntime.perf_counter_ns = lambda: ns() // 9"),
        "error",
        ("time.perf_counter_ns",),
    ),
    Fault(
        "patches_compare_outputs",
        _model(
            "return x * 3",
            prelude="""
            import harness.sandbox.correctness
            from harness.sandbox.correctness import OutputCheck
            harness.sandbox.correctness.compare_outputs = lambda *a, **k: OutputCheck(True)
            """,
        ),
        "error",
        ("harness.sandbox.correctness.compare_outputs",),
    ),
    Fault(
        "patches_backend_measure",
        _model(
            "return x + x",
            prelude="""
            from harness.backends.cpu import CpuBackend
            CpuBackend.measure = lambda self, fn, reps, device, flush: [fn() or 1e-6 for _ in range(reps)]
            """,
        ),
        "error",
        ("CpuBackend.measure",),
    ),
    Fault(
        "patches_clock_in_c",
        """
import ctypes
import time

import torch
import torch.nn as nn


class _MethodDef(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("meth", ctypes.c_void_p),
        ("flags", ctypes.c_int),
        ("doc", ctypes.c_char_p),
    ]


# Rewrites the C function behind time.perf_counter_ns: the function object stays the same (so an
# identity check cannot see it), but each call now advances the clock by one nanosecond.
_state = [time.perf_counter_ns(), 0]


def _fake(module, unused):
    _state[1] += 1
    return _state[0] + _state[1]


_FAKE = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p)(_fake)
_table = ctypes.c_void_p.from_address(id(time.perf_counter_ns) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
_MethodDef.from_address(_table).meth = ctypes.cast(_FAKE, ctypes.c_void_p).value


class ModelNew(nn.Module):
    def forward(self, x):
        time.sleep(0.025)
        return x + x
""",
        "error",
        ("timer is not trustworthy",),
        heavy=True,
    ),
    Fault(
        "writes_other_case_file",
        _model(
            "return x + x",
            prelude="""
            forged = "import torch\\nclass Model(torch.nn.Module):\\n"
            forged += "    def forward(self, x):\\n        return x * 3\\n"
            with open({victim_case!r}, "w") as fh:
                fh.write(forged)
            """,
        ),
        "error",
        ("{victim_case}",),
    ),
    Fault(
        "writes_out_dir",
        _model("return x + x", prelude='open({out_file!r}, "w").write("forged")\n'),
        "error",
        ("{out_file}",),
    ),
    Fault(
        "writes_home",
        _model("return x + x", prelude='open({home_file!r}, "w").write("forged")\n'),
        "error",
        ("{home_file}",),
    ),
    Fault(
        "signals_its_keeper_and_fork_server",
        _model(
            "return x + x",
            prelude="""
            keeper = os.getppid()
            with open(f"/proc/{keeper}/stat") as fh:
                fork_server = int(fh.read().rsplit(")", 1)[1].split()[1])
            for target in (keeper, fork_server):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError as exc:
                    print("blocked:", exc, flush=True)
            """,
        ),
        "pass",
    ),
    Fault(
        "writes_garbage_to_its_reply_pipe",
        _model(
            """
            import gc
            from multiprocessing.connection import Connection
            for obj in gc.get_objects():
                if isinstance(obj, Connection) and not obj.closed:
                    obj.send_bytes(b"forged")
            return x + x
            """
        ),
        "error",
        ("malformed reply",),
    ),
    Fault("zzz_good_last", GOOD, "pass"),
]

GOOD_NAMES = ("aaa_good_first", "zzz_good_last")
FILE_WRITERS = ("writes_other_case_file", "writes_out_dir", "writes_home")


def render(source: str, **values: str) -> str:
    """``source`` with its placeholders filled in (``{name}`` as is, ``{name!r}`` as a literal)."""
    for name, value in values.items():
        source = source.replace("{" + name + "!r}", repr(value)).replace("{" + name + "}", value)
    return source
