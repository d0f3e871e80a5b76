"""Evidence for the GPU evaluation design: start-up costs, two-process timing bias, interference, IPC costs.

Usage on the device machine (repository root, wheels installed)::

    python3 studies/gpu_diagnostics.py OUT [SECTION ...]

Sections (default: all): startup, pairs, stopinit, ipc, harness. Each prints a few lines and
everything goes to OUT/diagnostics.json. The two-process experiments mirror the harness's protocol
(two processes, rounds alternated, the other process stopped with SIGSTOP) with one factor changed
at a time, so a bias between the sides can be traced to its cause.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS: dict[str, Any] = {}


def say(text: str) -> None:
    print(text, flush=True)


# --- start-up costs ------------------------------------------------------------------------------


def _timed_python(code: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, (proc.stdout + proc.stderr).strip()[-400:]


STARTUP_CODE = """
import time; t0 = time.perf_counter()
import torch; t1 = time.perf_counter()
torch.cuda.init(); t2 = time.perf_counter()
torch.cuda.set_device(0); x = torch.zeros(1, device='cuda'); torch.cuda.synchronize(); t3 = time.perf_counter()
a = torch.randn(256, 256, device='cuda'); (a @ a).sum().item(); t4 = time.perf_counter()
print(f"import={t1-t0:.3f} init={t2-t1:.3f} first_tensor={t3-t2:.3f} first_matmul={t4-t3:.3f}")
"""


def section_startup() -> None:
    out: dict[str, Any] = {}
    for label, code in (
        ("python", "pass"),
        ("import_torch", "import torch"),
        ("harness_help", "import sys; sys.argv=['harness','--help']\nfrom harness.cli import main\ntry: main()\nexcept SystemExit: pass"),
        ("cuda_steps", STARTUP_CODE),
    ):
        wall, text = _timed_python(code)
        out[label] = {"wall_s": round(wall, 3), "output": text if label == "cuda_steps" else ""}
        say(f"startup {label}: {wall:.2f} s {text if label == 'cuda_steps' else ''}")
    # two CUDA inits at once
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", STARTUP_CODE], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    texts = [p.communicate()[0].strip() for p in procs]
    out["two_parallel_wall_s"] = round(time.perf_counter() - t0, 3)
    out["two_parallel"] = texts
    say(f"startup two in parallel: {out['two_parallel_wall_s']:.2f} s {texts}")
    RESULTS["startup"] = out


# --- two processes, alternated rounds ------------------------------------------------------------


def _worker(conn: Any, case_file: str, variant: dict[str, Any]) -> None:
    import torch

    from harness.backends.gpu import GpuBackend
    from harness.suite.cases import case_from_file, load_case

    device = "cuda:0"
    backend = GpuBackend()
    t0 = time.perf_counter()
    backend.prepare_process(device)
    torch.zeros(1, device=device)
    torch.cuda.synchronize()
    init_s = time.perf_counter() - t0
    if variant.get("flush_first"):
        backend.flush(device)
    if variant.get("old"):
        # what a long-lived reference worker has done before: other models, many allocations
        for other in ("benchmark/t3/matmul.py", "benchmark/t2/softmax.py", "benchmark/t4/cross_attention.py"):
            lc = load_case(case_from_file(Path(other)), "gpu", module_name=f"_old_{Path(other).stem}")
            with torch.device(device):
                m = lc.model_class(*lc.init_inputs())
                xs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in lc.inputs()]
            with torch.no_grad():
                for _ in range(5):
                    m(*xs)
            del m, xs
        torch.cuda.synchronize()
    case = case_from_file(Path(case_file))
    loaded = load_case(case, "gpu", module_name="_diag_case")
    builds = 2 if variant.get("double_build") else 1
    for _ in range(builds):
        torch.manual_seed(1)
        with torch.device(device):
            model = loaded.model_class(*loaded.init_inputs())
    model = model.to(device)
    torch.manual_seed(2)
    with torch.device(device):
        inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in loaded.inputs()]
    if variant.get("busy"):
        state = {"in_call": False}

        def burn() -> None:
            while True:
                if not state["in_call"]:
                    sum(range(2000))
                else:
                    time.sleep(0)

        threading.Thread(target=burn, daemon=True).start()
    else:
        state = {"in_call": False}

    def fn() -> Any:
        state["in_call"] = True
        with torch.no_grad():
            out = model(*inputs)
        state["in_call"] = False
        return out

    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    conn.send({"init_s": init_s})
    rt = torch.cuda
    while True:
        msg = conn.recv()
        if msg is None:
            return
        n, flush = msg
        idle, margin, cost = backend.calibration(device, flush)
        stream = rt.current_stream(device)
        events = [(rt.Event(enable_timing=True), rt.Event(enable_timing=True), rt.Event(enable_timing=True)) for _ in range(n)]
        host: list[float] = []
        for s, e, j in events:
            backend._lead(device, flush)
            s.record(stream)
            h0 = time.perf_counter()
            fn()
            host.append((time.perf_counter() - h0) * 1000)
            e.record(stream)
            while not e.query():
                pass
            rt.synchronize(device)
            j.record(stream)
        rt.synchronize(device)
        raw = [(float(s.elapsed_time(e)), float(s.elapsed_time(j))) for s, e, j in events]
        conn.send({"samples": [e_ - cost for e_, _ in raw], "gaps": [j_ - e_ for e_, j_ in raw], "host": host,
                   "idle": idle, "margin": margin, "cost": cost})


def _pair(case_file: str, va: dict[str, Any], vb: dict[str, Any], rounds: int = 10, budget_ms: float = 400.0) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    sides = []
    for v in (va, vb):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, case_file, v))
        p.start()
        sides.append((p, parent))
    ready = [conn.recv() for _, conn in sides]

    def round_of(i: int, n: int) -> dict[str, Any]:
        other = sides[1 - i][0]
        os.kill(other.pid, signal.SIGSTOP)
        try:
            sides[i][1].send((n, True))
            return sides[i][1].recv()
        finally:
            os.kill(other.pid, signal.SIGCONT)

    est = statistics.median(round_of(0, 5)["samples"])
    round_of(1, 5)
    per_round = max(3, int(budget_ms / max(est, 1e-3) / rounds))
    a: dict[str, list[float]] = {"samples": [], "gaps": [], "host": []}
    b: dict[str, list[float]] = {"samples": [], "gaps": [], "host": []}
    facts = {}
    for _ in range(rounds):
        for i, acc in ((0, a), (1, b)):
            r = round_of(i, per_round)
            for k in acc:
                acc[k] += r[k]
            facts[i] = (r["idle"], r["margin"], r["cost"])
    for p, conn in sides:
        conn.send(None)
        p.join(10)
    ma, mb = statistics.median(a["samples"]), statistics.median(b["samples"])

    def late(acc: dict[str, list[float]], i: int) -> int:
        idle, margin, _ = facts[i]
        return sum(g > idle + margin for g in acc["gaps"])

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[int(q * (len(xs) - 1))]

    return {
        "case": case_file, "a": va, "b": vb, "per_round": per_round, "init_s": [r["init_s"] for r in ready],
        "median_a_ms": ma, "median_b_ms": mb, "a_over_b": ma / mb,
        "late_a": late(a, 0), "late_b": late(b, 1), "n": len(a["samples"]),
        "gap_p50_a": pct(a["gaps"], 0.5), "gap_p90_a": pct(a["gaps"], 0.9), "gap_p99_a": pct(a["gaps"], 0.99),
        "gap_p50_b": pct(b["gaps"], 0.5), "gap_p90_b": pct(b["gaps"], 0.9), "gap_p99_b": pct(b["gaps"], 0.99),
        "host_ms_a": statistics.median(a["host"]), "host_ms_b": statistics.median(b["host"]),
        "facts": facts,
    }


PAIRS = [
    ("benchmark/t3/matmul_bf16.py", {}, {}),
    ("benchmark/t3/matmul_bf16.py", {"old": True}, {}),
    ("benchmark/t3/matmul_bf16.py", {}, {"double_build": True}),
    ("benchmark/t4/transformer_encoder_layer.py", {}, {}),
    ("benchmark/t4/transformer_encoder_layer.py", {"old": True}, {}),
    ("benchmark/t4/transformer_encoder_layer.py", {}, {"double_build": True}),
    ("benchmark/t4/transformer_encoder_layer.py", {}, {"busy": True}),
    ("benchmark/t4/multihead_attention.py", {"old": True}, {}),
    ("benchmark/t1/relu.py", {}, {"busy": True}),
    ("benchmark/t3/matmul.py", {}, {"flush_first": True}),
]


def section_pairs() -> None:
    rows = []
    deadline = time.monotonic() + float(os.environ.get("PAIRS_S", "150"))
    for case_file, va, vb in PAIRS:
        if time.monotonic() > deadline:
            say(f"pairs: deadline, skipped {case_file} {va} {vb}")
            continue
        try:
            row = _pair(case_file, va, vb)
        except Exception as exc:  # noqa: BLE001 - a diagnostic keeps going
            say(f"pairs {case_file} {va} {vb}: {type(exc).__name__}: {exc}")
            continue
        rows.append(row)
        say(
            f"pair {Path(case_file).stem:26s} A={json.dumps(va):22s} B={json.dumps(vb):22s} "
            f"A/B={row['a_over_b']:.4f} medA={row['median_a_ms']:.4f} late={row['late_a']}/{row['late_b']} of {row['n']} "
            f"gap50/90/99 A={row['gap_p50_a']*1000:.0f}/{row['gap_p90_a']*1000:.0f}/{row['gap_p99_a']*1000:.0f}us "
            f"B={row['gap_p50_b']*1000:.0f}/{row['gap_p90_b']*1000:.0f}/{row['gap_p99_b']*1000:.0f}us "
            f"host A/B={row['host_ms_a']:.3f}/{row['host_ms_b']:.3f}ms init={row['init_s']}"
        )
    RESULTS["pairs"] = rows


# --- does a process stopped during CUDA init block another's timing? ------------------------------

STOPINIT_TIMER = """
import time, torch, json
x = torch.randn(4096, 4096, device='cuda'); torch.cuda.synchronize()
ts = []
end = time.perf_counter() + 4.0
while time.perf_counter() < end:
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    h0 = time.perf_counter(); s.record(); y = x @ x; e.record(); e.synchronize(); h1 = time.perf_counter()
    ts.append((time.perf_counter(), s.elapsed_time(e), (h1 - h0) * 1000))
print(json.dumps(ts))
"""


def section_stopinit() -> None:
    timer = subprocess.Popen([sys.executable, "-c", STOPINIT_TIMER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(2.0)  # timer has started its loop
    t_start = time.perf_counter()
    victim = subprocess.Popen([sys.executable, "-c", "import torch; torch.cuda.init(); torch.zeros(1, device='cuda'); import time; time.sleep(5)"])
    time.sleep(1.2)  # in the middle of import torch / CUDA init
    os.kill(victim.pid, signal.SIGSTOP)
    time.sleep(1.0)
    os.kill(victim.pid, signal.SIGCONT)
    text = timer.communicate()[0]
    victim.kill()
    try:
        ts = json.loads(text)
    except ValueError:
        say("stopinit: timer output unreadable")
        return
    gpu = [g for _, g, _ in ts]
    hostmax = max(h for _, _, h in ts)
    RESULTS["stopinit"] = {"calls": len(ts), "gpu_median_ms": statistics.median(gpu), "gpu_max_ms": max(gpu),
                           "host_max_ms": hostmax, "t_victim_start": t_start}
    say(f"stopinit: {len(ts)} calls, gpu median {statistics.median(gpu):.3f} max {max(gpu):.3f} ms; host max {hostmax:.1f} ms")


# --- IPC and comparison costs --------------------------------------------------------------------

IPC_CHILD = """
import sys, time, json, ctypes, torch
torch.cuda.init(); torch.zeros(1, device='cuda')
cuda = ctypes.CDLL('libcuda.so.1')
handle = bytes.fromhex(sys.stdin.readline().strip())
class H(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * 64)]
h = H.from_buffer_copy(handle)
ptr = ctypes.c_uint64()
t0 = time.perf_counter()
rc = cuda.cuIpcOpenMemHandle_v2(ctypes.byref(ptr), h, ctypes.c_uint(1))
t1 = time.perf_counter()
base = ctypes.c_uint64(); size = ctypes.c_size_t()
rc2 = cuda.cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size), ptr)
n = int(sys.argv[1])
class CAI:
    __cuda_array_interface__ = {"shape": (n,), "typestr": "<f4", "data": (ptr.value, False), "version": 3, "strides": None}
view = torch.as_tensor(CAI(), device='cuda')
torch.cuda.synchronize(); t2 = time.perf_counter()
copy = view.clone(); torch.cuda.synchronize(); t3 = time.perf_counter()
s = float(copy[:1000].sum()); t4 = time.perf_counter()
del view
rc3 = cuda.cuIpcCloseMemHandle(ptr)
t5 = time.perf_counter()
print(json.dumps({"open_rc": rc, "range_rc": rc2, "size": size.value, "open_ms": (t1-t0)*1e3, "copy_ms": (t3-t2)*1e3, "close_rc": rc3, "close_ms": (t5-t4)*1e3, "sum": s}))
"""


def section_ipc() -> None:
    import torch

    from harness.sandbox.correctness import compare_outputs

    n = 1 << 28  # 1 GiB of float32
    x = torch.randn(n, device="cuda")
    torch.cuda.synchronize()
    cuda = __import__("ctypes").CDLL("libcuda.so.1")
    import ctypes

    class H(ctypes.Structure):
        _fields_ = [("reserved", ctypes.c_char * 64)]

    h = H()
    rc = cuda.cuIpcGetMemHandle(ctypes.byref(h), ctypes.c_uint64(x.data_ptr()))
    child = subprocess.Popen([sys.executable, "-c", IPC_CHILD, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    text = child.communicate(bytes(h).hex() + "\n", timeout=120)[0]
    out: dict[str, Any] = {"get_rc": rc, "child": text.strip()[-500:], "expected_sum": float(x[:1000].sum())}
    t0 = time.perf_counter()
    host = x.cpu()
    out["d2h_ms"] = (time.perf_counter() - t0) * 1e3
    y = x + 1e-6
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    verdict = compare_outputs([x], [y], 1e-2, 1e-2)
    torch.cuda.synchronize()
    out["compare_gpu_ms"] = (time.perf_counter() - t0) * 1e3
    out["compare_gpu_ok"] = verdict.ok
    t0 = time.perf_counter()
    verdict = compare_outputs([host], [host + 1e-6], 1e-2, 1e-2)
    out["compare_cpu_ms"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    torch.manual_seed(3)
    z = torch.randn(n, device="cuda")
    torch.cuda.synchronize()
    out["randn_gpu_ms"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    same = torch.equal(z.view(torch.int32), z.clone().view(torch.int32))
    torch.cuda.synchronize()
    out["equal_plus_clone_gpu_ms"] = (time.perf_counter() - t0) * 1e3
    out["same"] = same
    RESULTS["ipc"] = out
    say(f"ipc: {json.dumps(out)}")


# --- the harness as it is ------------------------------------------------------------------------

BUSY_CANDIDATE = '''
"""Same model as the reference; a CPU thread burns while forward is not running."""
import threading, time
from harness.solutions import reference_model

_Base = reference_model(__file__.replace("/tmp/diag_solutions/", "/REPO/benchmark/solutions/reference/"))
_state = {"in_call": False}


def _burn():
    while True:
        if not _state["in_call"]:
            sum(range(2000))
        else:
            time.sleep(0)


class ModelNew(_Base):
    def __init__(self, *args):
        super().__init__(*args)
        threading.Thread(target=_burn, daemon=True).start()

    def forward(self, *args):
        _state["in_call"] = True
        try:
            return super().forward(*args)
        finally:
            _state["in_call"] = False
'''


def _harness(args: list[str], limit: float = 120.0) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT, timeout=limit)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, stdout, stderr = 124, "", "TIMEOUT"
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"cmd": shlex.join(args), "exit": code, "wall_s": round(wall, 2), "stderr": stderr[-600:]}
    if "--json" in args:
        try:
            result = json.loads(stdout)["result"]
            row.update(status=result["status"], speedup=result.get("speedup"), reason=result.get("reason"),
                       warnings=result.get("warnings"), eval_wall_s=result.get("wall_time_s"))
        except (ValueError, KeyError):
            row["stdout"] = stdout[-600:]
    return row


def section_harness() -> None:
    rows = []
    relu = ["eval", "benchmark/t1/relu.py", "benchmark/solutions/reference/t1/relu.py", "--backend", "gpu", "--json"]
    rows.append(_harness(relu))
    rows.append(_harness([*relu, "--isolation", "none"]))
    folder = Path("/tmp/diag_solutions/t4")
    folder.mkdir(parents=True, exist_ok=True)
    for case in ("t4/transformer_encoder_layer", "t1/relu"):
        tier, name = case.split("/")
        target = Path("/tmp/diag_solutions") / tier / f"{name}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(BUSY_CANDIDATE.replace("/REPO/", str(ROOT) + "/"))
        rows.append(_harness(["eval", f"benchmark/{case}.py", str(target), "--backend", "gpu", "--json"]))
    for row in rows:
        say(f"harness: {row}")
    RESULTS["harness"] = rows


SECTIONS = {"startup": section_startup, "pairs": section_pairs, "stopinit": section_stopinit,
            "ipc": section_ipc, "harness": section_harness}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    names = argv[1:] or list(SECTIONS)
    for name in names:
        t0 = time.perf_counter()
        try:
            SECTIONS[name]()
        except Exception as exc:  # noqa: BLE001
            say(f"{name} failed: {type(exc).__name__}: {exc}")
        say(f"[{name} {time.perf_counter() - t0:.1f} s]")
        (out / "diagnostics.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
