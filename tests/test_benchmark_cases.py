"""Contract tests for the bundled benchmark suite (``benchmark/t*/*.py``).

Each case is imported straight from its path (no harness needed) and checked against the
KernelBench-style contract: a docstring, ``Model``/``get_inputs``/``get_init_inputs``/``get_flops``,
well-formed ``SIZES`` and ``SHAPES`` overrides, tolerances, one forward at each CPU shape with finite
outputs, and a matching A/A file in ``benchmark/solutions/reference/``. The ``gpu``/``npu`` sizes are
checked on the ``meta`` device, which computes shapes without allocating memory.

Run as a script to time the reference forwards (the numbers in ``benchmark/SIZING.md``)::

    python3 tests/test_benchmark_cases.py            # CPU sizes on the CPU, 2 threads
    python3 tests/test_benchmark_cases.py --device cuda   # SIZES["gpu"] on a CUDA GPU, TF32 off
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmark"
REFERENCE_SET = SUITE / "solutions" / "reference"
CASE_FILES = sorted(SUITE.glob("t[0-9]*/*.py"))
BACKENDS = ("cpu", "gpu", "npu")
LOW_PRECISION = (torch.float16, torch.bfloat16)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def load(path: Path, backend: str | None = None, shape: int = 0) -> types.ModuleType:
    """Import a case file under a private name and apply ``SIZES[backend]`` when given, then shape
    ``shape`` of its ``SHAPES[backend]`` (a case without SHAPES, or a backend without an entry, has one)."""
    name = f"_benchmark_case_{path.parent.name}_{path.stem}_{backend or 'default'}_{shape}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"{path} cannot be imported"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if backend is not None:
        for key, value in getattr(module, "SIZES", {}).get(backend, {}).items():
            setattr(module, key, value)
        for key, value in shape_entries(module, backend)[shape].items():
            setattr(module, key, value)
    return module


def shape_entries(module: types.ModuleType, backend: str) -> list[dict]:
    """``SHAPES[backend]``, or one empty entry (the backend's sizes as they are)."""
    return list(getattr(module, "SHAPES", {}).get(backend) or [{}])


def build(module: types.ModuleType, seed: int = 0) -> tuple[nn.Module, list]:
    """The case's model and one set of inputs, seeded as the harness seeds them."""
    torch.manual_seed(seed)
    model = module.Model(*module.get_init_inputs())
    return model, list(module.get_inputs())


def as_outputs(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def tensor_shapes(values) -> list:
    return [tuple(v.shape) if isinstance(v, torch.Tensor) else v for v in values]


cases = pytest.mark.parametrize("path", CASE_FILES, ids=case_id)


def test_suite_layout():
    tiers = {}
    for path in CASE_FILES:
        tiers.setdefault(path.parent.name, []).append(path.stem)
    assert sorted(tiers) == ["t1", "t2", "t3", "t4", "t5"]
    assert len(CASE_FILES) >= 42
    names = [p.stem for p in CASE_FILES]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"case names must be unique across tiers: {duplicates}"
    bad = [n for n in names if not NAME_PATTERN.match(n)]
    assert not bad, f"case names must be lowercase snake_case: {bad}"


def test_low_precision_cases_exist():
    low = []
    for path in CASE_FILES:
        with torch.device("meta"):
            _, inputs = build(load(path))
        if any(isinstance(t, torch.Tensor) and t.dtype in LOW_PRECISION for t in inputs):
            low.append(path.stem)
    assert len(low) >= 4, f"want at least 4 bf16/fp16 cases, found {low}"


@cases
def test_case_contract(path: Path):
    module = load(path)
    doc = (module.__doc__ or "").strip()
    assert doc, "a case starts with a module docstring"
    assert doc.splitlines()[0].endswith("."), "the docstring's first line is a sentence"
    assert isinstance(module.Model, type) and issubclass(module.Model, nn.Module)
    for name in ("get_inputs", "get_init_inputs", "get_flops"):
        assert callable(getattr(module, name, None)), f"missing {name}()"
    assert isinstance(module.get_inputs(), (list, tuple))
    assert isinstance(module.get_init_inputs(), (list, tuple))
    for name in ("ATOL", "RTOL"):
        value = getattr(module, name, 1e-2)
        assert isinstance(value, float) and 0.0 <= value <= 0.1, f"{name} = {value!r}"


@cases
def test_sizes_override_existing_names(path: Path):
    module = load(path)
    sizes = getattr(module, "SIZES", None)
    assert isinstance(sizes, dict), "every bundled case gives SIZES for the accelerators"
    assert set(sizes) <= set(BACKENDS), f"unknown backend keys {set(sizes) - set(BACKENDS)}"
    assert {"gpu", "npu"} <= set(sizes), "give SIZES['gpu'] and SIZES['npu']"
    for backend, overrides in sizes.items():
        assert isinstance(overrides, dict) and overrides, f"SIZES[{backend!r}] must be a non-empty dict"
        for key, value in overrides.items():
            assert hasattr(module, key), f"SIZES[{backend!r}] overrides undefined name {key!r}"
            default = getattr(module, key)
            assert not callable(default) and not isinstance(default, (type, types.ModuleType)), key
            assert type(value) is type(default), f"SIZES[{backend!r}][{key!r}] changes the type"


SHAPED = [p for p in CASE_FILES if hasattr(load(p), "SHAPES")]


def test_at_least_ten_cases_of_every_tier_have_several_shapes():
    assert len(SHAPED) >= 10, [case_id(p) for p in SHAPED]
    assert {p.parent.name for p in SHAPED} == {"t1", "t2", "t3", "t4", "t5"}


@pytest.mark.parametrize("path", SHAPED, ids=case_id)
def test_shapes_override_existing_names_on_every_backend(path: Path):
    """Each backend lists several distinct shapes over existing size names; the npu's are the gpu's."""
    module = load(path)
    shapes = module.SHAPES
    assert set(shapes) == set(BACKENDS), "give SHAPES for cpu, gpu and npu"
    assert shapes["npu"] == shapes["gpu"], "npu sizes are the gpu sizes (benchmark/SIZING.md)"
    for backend, entries in shapes.items():
        assert isinstance(entries, list) and len(entries) >= 2, f"SHAPES[{backend!r}] lists several shapes"
        seen = []
        for entry in entries:
            assert isinstance(entry, dict)
            for key, value in entry.items():
                assert hasattr(module, key), f"SHAPES[{backend!r}] overrides undefined name {key!r}"
                assert type(value) is type(getattr(module, key)), f"SHAPES[{backend!r}][{key!r}] changes the type"
            sized = load(path, backend, len(seen))
            seen.append(tensor_shapes(build_meta(sized)[1]))
        assert len({repr(s) for s in seen}) == len(seen), f"SHAPES[{backend!r}] repeats a shape"


def build_meta(module: types.ModuleType) -> tuple[nn.Module, list]:
    with torch.device("meta"):
        return build(module)


@cases
def test_reference_solution_exists(path: Path):
    solution = REFERENCE_SET / path.parent.name / path.name
    assert solution.is_file(), f"missing A/A control {solution.relative_to(ROOT)}"
    text = solution.read_text(encoding="utf-8")
    assert "from harness.solutions import reference_model" in text
    assert "ModelNew = reference_model(__file__)" in text
    assert path.stem in text.split("\n", 1)[0], "the docstring names the case"


@cases
def test_reference_solution_is_the_case_model(path: Path):
    """The A/A file resolves (through harness.solutions) to a class built like the case's Model."""
    pytest.importorskip("harness.solutions")
    solution = REFERENCE_SET / path.parent.name / path.name
    spec = importlib.util.spec_from_file_location(f"_reference_{path.parent.name}_{path.stem}", solution)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = load(path)
    assert module.ModelNew.__name__ == "Model"
    assert Path(sys.modules[module.ModelNew.__module__].__file__).resolve() == path.resolve()
    with torch.device("meta"):
        torch.manual_seed(0)
        new = module.ModelNew(*case.get_init_inputs())
        model, _ = build(case)
    assert list(new.state_dict()) == list(model.state_dict())


def test_no_stray_reference_solutions():
    cases_by_id = {case_id(p) for p in CASE_FILES}
    stray = [case_id(p) for p in sorted(REFERENCE_SET.glob("t[0-9]*/*.py")) if case_id(p) not in cases_by_id]
    assert not stray, f"reference solutions without a case: {stray}"


@cases
def test_runs_on_cpu_with_finite_outputs(path: Path):
    module = load(path, "cpu")
    model, inputs = build(module)
    again, _ = build(module)
    for (key, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"seeded construction gives different {key}"
    assert inputs and all(type(t) is torch.Tensor for t in inputs), "get_inputs() returns tensors"
    fresh = module.get_inputs()
    assert any(not torch.equal(a, b) for a, b in zip(inputs, fresh, strict=True)), (
        "get_inputs() must give fresh random values on every call"
    )
    with torch.inference_mode():
        outputs = as_outputs(model(*inputs))
    assert outputs and all(type(t) is torch.Tensor for t in outputs), "forward returns tensors"
    for index, out in enumerate(outputs):
        assert out.is_floating_point(), f"output {index} is {out.dtype}"
        assert bool(torch.isfinite(out).all()), f"output {index} has NaN or Inf"
        assert out.numel() == 1 or out.float().std() > 0, f"output {index} is constant"
    flops = module.get_flops()
    assert isinstance(flops, int) and flops > 0
    for shape in range(1, len(shape_entries(module, "cpu"))):  # the other CPU shapes run too
        other = load(path, "cpu", shape)
        model, inputs = build(other)
        with torch.inference_mode():
            outputs = as_outputs(model(*inputs))
        assert all(bool(torch.isfinite(out).all()) for out in outputs), f"shape {shape + 1} has NaN or Inf"
        assert other.get_flops() > 0


@cases
@pytest.mark.parametrize("backend", ["gpu", "npu"])
def test_backend_sizes_apply(path: Path, backend: str):
    """get_inputs() reads the overridden names, and the model runs at those sizes (shapes only)."""
    default = load(path)
    for shape in range(len(shape_entries(default, backend))):
        module = load(path, backend, shape)
        assert module.get_flops() > default.get_flops(), "accelerator sizes should be larger"
        with torch.device("meta"):
            _, cpu_inputs = build(default)
            model, inputs = build(module)
            outputs = as_outputs(model(*inputs))
        assert tensor_shapes(inputs) != tensor_shapes(cpu_inputs), "get_inputs() ignores the overrides"
        assert all(isinstance(t, torch.Tensor) for t in outputs)
        assert [t.dtype for t in inputs] == [t.dtype for t in cpu_inputs]


# --- timing (python3 tests/test_benchmark_cases.py) ------------------------------------------------

H100_BANDWIDTH = 3.0e12  # bytes/s
H100_FP32 = 50e12  # FLOP/s, TF32 off
H100_HALF = 700e12  # FLOP/s, bf16/fp16 tensor cores
LAUNCH_S = 5e-6


def h100_estimate_ms(module: types.ModuleType) -> float:
    """Roofline guess for the eager reference at the current sizes: each aten op reads its inputs and
    writes its outputs once, matmul-like work runs at peak, and every op costs one launch."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Traffic(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.bytes = 0
            self.launches = 0

        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            # Views are free, except "to" with a new dtype (an aliasing op only when the dtype stays).
            first = args[0] if args else None
            casts = (
                isinstance(first, torch.Tensor) and isinstance(out, torch.Tensor) and out.dtype != first.dtype
            )
            if casts or not (func.is_view or func.__name__.split(".")[0] == "lift_fresh"):
                leaves = tree_flatten((args, kwargs, out))[0]
                self.bytes += sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))
                self.launches += 1
            return out

    with torch.device("meta"):
        model, inputs = build(module)
        low = any(t.dtype in LOW_PRECISION for t in inputs) or any(
            p.dtype in LOW_PRECISION for p in model.parameters()
        )
        traffic = Traffic()
        with torch.inference_mode(), traffic:
            model(*inputs)
    peak = H100_HALF if low else H100_FP32
    seconds = max(traffic.bytes / H100_BANDWIDTH, module.get_flops() / peak) + LAUNCH_S * traffic.launches
    return 1e3 * seconds


def time_case(
    path: Path, device: str, repeats: int, warmup: int, windows: int, shape: int = 0
) -> tuple[float, float]:
    """Milliseconds of one reference forward on ``device`` (CUDA: at the ``gpu`` sizes) at shape ``shape``.

    After ``warmup`` calls, ``windows`` runs of ``repeats`` consecutive calls; returns the lowest of
    their medians (a window in which another process held a core does not count) and the fastest call.
    """
    module = load(path, "cpu" if device == "cpu" else "gpu", shape)
    with torch.device(device):
        model, inputs = build(module)
    times = []
    with torch.inference_mode():
        for i in range(warmup + windows * repeats):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(*inputs)
                end.record()
                torch.cuda.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                model(*inputs)
                elapsed = 1e3 * (time.perf_counter() - t0)
            if i >= warmup:
                times.append(elapsed)
    medians = [statistics.median(times[w * repeats : (w + 1) * repeats]) for w in range(windows)]
    return min(medians), min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time each case's reference forward (benchmark/SIZING.md).")
    parser.add_argument("--device", default="cpu", help="cpu (CPU sizes) or cuda (SIZES['gpu'])")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for --device cpu")
    parser.add_argument("--repeats", type=int, default=10, help="consecutive calls whose median is taken")
    parser.add_argument("--windows", type=int, default=5, help="runs of --repeats calls per process")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per case")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: time one case, print its median
    parser.add_argument("--shape", type=int, default=0, help=argparse.SUPPRESS)  # internal: which shape
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if args.one:
        print(*time_case(Path(args.one), args.device, args.repeats, args.warmup, args.windows, args.shape))
        return 0
    backend = "cpu" if args.device == "cpu" else "gpu"
    print(
        f"| case | dtype | {args.device} ms | fastest call ms | H100 estimate ms | GFLOP at {backend} sizes |"
    )
    print("|---|---|---:|---:|---:|---:|")
    total = 0.0
    options = [
        f"--{name}={getattr(args, name)}" for name in ("device", "threads", "repeats", "warmup", "windows")
    ]
    for path in CASE_FILES:
        if args.k not in path.stem:
            continue
        for shape in range(len(shape_entries(load(path), backend))):  # one row per shape
            command = [sys.executable, __file__, "--one", str(path), f"--shape={shape}", *options]
            runs = [
                subprocess.run(command, check=True, capture_output=True, text=True) for _ in range(args.rounds)
            ]
            median = min(float(run.stdout.split()[-2]) for run in runs)
            fastest = min(float(run.stdout.split()[-1]) for run in runs)
            total += median
            module = load(path, backend, shape)
            with torch.device("meta"):
                _, inputs = build(module)
            dtype = ",".join(sorted({str(t.dtype)[6:] for t in inputs if t.is_floating_point()})) or "int64"
            estimate = h100_estimate_ms(load(path, "gpu", shape))
            gflop = module.get_flops() / 1e9
            label = case_id(path) + (f" #{shape + 1}" if shape else "")
            row = f"| {label} | {dtype} | {median:.2f} | {fastest:.2f} | {estimate:.2f} | {gflop:.3g} |"
            print(row, flush=True)
    print(f"\ntotal: {total:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
