"""Cases of several shapes (``SHAPES``): the contract, an evaluation per shape, and what results hold.

The cases here are tiny (a row sum of 16 x 256 and 17 x 1000 floats), so a whole evaluation costs
a few seconds; the bundled cases with several shapes are checked in test_benchmark_cases.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import CaseLoadError
from harness.evaluation.evaluate import Task, seeds_for
from harness.evaluation.journal import read_journal
from harness.suite.cases import case_from_file, load_case
from tests.conftest import FAST_ARGS, SCALE_CASE, load_json, run_harness

ROWSUM_CASE = '''
"""Row sums of a (batch, dim) float32 matrix, at two shapes."""
import torch
import torch.nn as nn

batch_size, dim = 16, 256
SHAPES = {"cpu": [{}, {"batch_size": 17, "dim": 1000}]}


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.sum(dim=1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim]


def get_flops():
    return batch_size * dim
'''

GOOD = '''
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        assert x.shape[1] == self.dim  # built for the shape it runs on (the init inputs differ)
        return x.sum(dim=1)
'''

# Correct on the first shape only: it sums the first 256 columns, the width it was written for.
HARD_CODED = '''
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return x[:, :256].sum(dim=1)
'''


@pytest.fixture
def shaped_suite(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    (root / "t1").mkdir(parents=True)
    (root / "t1" / "rowsum.py").write_text(ROWSUM_CASE)
    return root


def _case_file(tmp_path: Path, shapes: str, sizes: str = "") -> Path:
    path = tmp_path / "t1" / "knobs.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "import torch\nimport torch.nn as nn\nbatch_size, dim = 4, 8\n"
        f"{sizes}\n{shapes}\n"
        "class Model(nn.Module):\n    def forward(self, x):\n        return x\n"
        "def get_inputs():\n    return [torch.randn(batch_size, dim)]\n"
        "def get_init_inputs():\n    return []\n"
    )
    return path


# --- the contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ("SHAPES = [{'dim': 3}]", "SHAPES must be a dict"),
        ("SHAPES = {'GPU': [{'dim': 3}]}", "unknown backend"),
        ("SHAPES = {'cpu': {'dim': 3}}", "non-empty list"),
        ("SHAPES = {'cpu': []}", "non-empty list"),
        ("SHAPES = {'cpu': [{'dim': 3}, 5]}", r"SHAPES\['cpu'\]\[1\] must be a dict"),
        ("SHAPES = {'gpu': [{'dimm': 3}]}", r"SHAPES\['gpu'\]\[0\] overrides undefined name"),
    ],
)
def test_a_malformed_shapes_is_a_case_load_error_naming_the_file(tmp_path: Path, shapes: str, message: str) -> None:
    path = _case_file(tmp_path, shapes)
    with pytest.raises(CaseLoadError, match=message) as caught:
        load_case(case_from_file(path), "cpu", module_name="_shapes_bad")
    assert str(path) in str(caught.value)


def test_each_shape_applies_on_top_of_the_backend_sizes_never_on_the_last_shape(tmp_path: Path) -> None:
    path = _case_file(
        tmp_path,
        "SHAPES = {'gpu': [{'batch_size': 3}, {'dim': 5}, {}]}",
        sizes="SIZES = {'gpu': {'batch_size': 64, 'dim': 128}}",
    )
    loaded = load_case(case_from_file(path), "gpu", module_name="_shapes_gpu")
    assert loaded.shape_count == 3
    seen = []
    for index in (0, 1, 2, 0):
        loaded.select_shape(index)
        seen.append((loaded.module.batch_size, loaded.module.dim, loaded.shape_sizes()))
    assert seen == [
        (3, 128, {"batch_size": 3, "dim": 128}),
        (64, 5, {"batch_size": 64, "dim": 5}),
        (64, 128, {"batch_size": 64, "dim": 128}),
        (3, 128, {"batch_size": 3, "dim": 128}),
    ]
    cpu = load_case(case_from_file(path), "cpu", module_name="_shapes_cpu")  # no cpu entry: one shape
    assert (cpu.shape_count, cpu.shape_sizes(), cpu.module.batch_size) == (1, {}, 4)


def test_a_plain_kernelbench_file_has_one_shape(suite: Path) -> None:
    loaded = load_case(case_from_file(suite / "t2" / "linear_relu.py"), "cpu", module_name="_shapes_plain")
    assert (loaded.shape_count, loaded.shape_sizes()) == (1, {})


def test_list_counts_the_shapes_of_each_backend_without_importing_the_case(shaped_suite: Path) -> None:
    (shaped_suite / "t1" / "scale.py").write_text(SCALE_CASE)  # no SHAPES: one shape everywhere
    rows = json.loads(run_harness("list", "--suite", str(shaped_suite), "--json").stdout)
    counts = {r["name"]: r["shapes"] for r in rows}
    assert counts["rowsum"]["cpu"] == 2 and set(counts["scale"].values()) == {1}


def test_later_shapes_draw_their_own_inputs_from_the_same_model_seed(shaped_suite: Path) -> None:
    task = Task(case_from_file(shaped_suite / "t1" / "rowsum.py"), None, "cpu")
    first, second = seeds_for(7, task, 3), seeds_for(7, task, 3, shape=1)
    assert first["init_seed"] == second["init_seed"]  # equal init inputs give equal weights on every shape
    assert first["trial_seeds"] != second["trial_seeds"] and first["timing_seed"] != second["timing_seed"]
    assert seeds_for(7, task, 3, shape=0) == first  # shape 0 draws what a case without shapes drew


def test_the_candidate_keeps_its_model_unless_the_init_inputs_differ(tmp_path: Path) -> None:
    """Same init inputs: ModelNew is kept from shape to shape; different ones: it is built again."""
    from harness.sandbox.candidate import CandidateSession

    solution = tmp_path / "solution.py"
    solution.write_text(GOOD)
    for shapes, rebuilt in (("[{}, {'batch_size': 9}]", False), ("[{}, {'dim': 9}]", True)):
        case = tmp_path / "t1" / ("same.py" if not rebuilt else "other.py")
        case.parent.mkdir(parents=True, exist_ok=True)
        case.write_text(ROWSUM_CASE.replace("""[{}, {"batch_size": 17, "dim": 1000}]""", shapes))
        session = CandidateSession("cpu", "cpu")
        seeds = {"trial_seeds": [1], "timing_seed": 2, "fresh_seed": 3}
        session.load({"name": case.stem, "tier": "t1", "path": str(case)}, str(solution), init_seed=5, **seeds)
        first = session.model
        assert session.use_shape(1, **seeds) == {"rebuilt": rebuilt}
        assert (session.model is not first) is rebuilt
        assert session.timing_inputs is not None and tuple(session.timing_inputs[0].shape) == (
            (9, 256) if not rebuilt else (16, 9)
        )


def test_the_manifest_describes_every_shape(shaped_suite: Path) -> None:
    from harness.suite.manifest import profile

    described = profile(case_from_file(shaped_suite / "t1" / "rowsum.py"), "cpu")
    assert described["inputs"] == [{"shape": [16, 256], "dtype": "float32"}]  # the first shape's
    assert [(s["sizes"], s["flops"], s["bytes_moved"]) for s in described["shapes"]] == [
        ({"batch_size": 16, "dim": 256}, 16 * 256, 4 * (16 * 256 + 16)),
        ({"batch_size": 17, "dim": 1000}, 17 * 1000, 4 * (17 * 1000 + 17)),
    ]


# --- evaluations ----------------------------------------------------------------------------------


def test_a_candidate_correct_on_one_shape_and_wrong_on_another_fails_naming_the_shape(
    shaped_suite: Path, write_candidate: Callable[[str, str], Path]
) -> None:
    wrong = write_candidate("hard_coded", HARD_CODED)
    proc = run_harness("eval", str(shaped_suite / "t1" / "rowsum.py"), str(wrong), "--json", *FAST_ARGS)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "fail" and result["phase"] == "correctness_check"
    assert result["reason"].startswith("shape 2 of 2 (batch_size=17, dim=1000): trial 0: ")
    assert result["speedup"] is None and result["score"] == 0
    first, second = result["shapes"]
    assert first["status"] == "pass" and first["timing"]["solution"]["samples_ms"]  # shape 1 was checked and timed
    assert second["status"] == "fail" and second["correctness"]["gate"] == "elementwise"
    assert result["correctness"]["first_failure"] == result["reason"]
    assert result["correctness"]["passed_trials"] == 2 and result["correctness"]["trials"] == 4


def test_a_run_times_every_shape_and_scores_the_geometric_mean(
    shaped_suite: Path, solutions: Path, tmp_path: Path
) -> None:
    """One `harness run` over a case of two shapes and a plain one, then every reader of its result."""
    (shaped_suite / "t1" / "scale.py").write_text(SCALE_CASE)
    (solutions / "t1" / "rowsum.py").write_text(GOOD)
    out = tmp_path / "out"
    proc = run_harness(
        "run", "--suite", str(shaped_suite), "--solutions", str(solutions), "--out", str(out), "--seed", "3",
        *FAST_ARGS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = load_json(out / "result.json")
    cases = {c["name"]: c for c in payload["cases"]}
    rowsum, scale = cases["rowsum"], cases["scale"]

    # A plain KernelBench case: the structure it always had, no shapes.
    assert "shapes" not in scale and scale["timing"]["solution"]["samples_ms"]
    assert scale["speedup"] == scale["timing"]["reference"]["median_ms"] / scale["timing"]["solution"]["median_ms"]

    # Two shapes: each timed with its raw samples, the case speedup their geometric mean.
    shapes = rowsum["shapes"]
    assert [s["sizes"] for s in shapes] == [{"batch_size": 16, "dim": 256}, {"batch_size": 17, "dim": 1000}]
    for shape in shapes:
        ref, sol = shape["timing"]["reference"], shape["timing"]["solution"]
        assert shape["status"] == "pass" and len(sol["samples_ms"]) == sol["repetitions"] >= 2
        assert shape["speedup"] == pytest.approx(ref["median_ms"] / sol["median_ms"])
        assert shape["correctness"]["passed_trials"] == 2 and shape["roofline"]["flops"] > 0
    assert rowsum["speedup"] == pytest.approx(math.sqrt(shapes[0]["speedup"] * shapes[1]["speedup"]))
    assert rowsum["timing"] == {"reference": None, "solution": None}
    assert rowsum["correctness"]["trials"] == 4 and rowsum["correctness"]["fresh_output_ok"] is True
    assert payload["summary"]["geomean_speedup"] == pytest.approx(math.sqrt(rowsum["speedup"] * scale["speedup"]))
    assert "#2 batch_size=17, dim=1000" in proc.stdout  # the run's table lists the shapes
    journal = {r.name: r.to_json() for r in read_journal(out / "journal.jsonl").results}
    assert journal["rowsum"]["shapes"] == rowsum["shapes"]  # what --resume reads back

    # validate (schema and recomputed figures), old result files too; an edited shape is caught.
    old = sorted((Path(__file__).parent / "analysis_data").glob("*.json"))
    deep = run_harness("validate", "--deep", str(out / "result.json"), *map(str, old))
    assert deep.returncode == 0, deep.stdout + deep.stderr
    shapes[1]["speedup"] *= 1.5
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    caught = run_harness("validate", "--deep", str(edited))
    assert caught.returncode == 4 and "(rowsum) shape 2: speedup is" in caught.stderr

    # report and compare read the shapes.
    report = run_harness("report", str(out / "result.json"), "--format", "markdown")
    assert report.returncode == 0 and "### Shapes" in report.stdout and "batch_size=17, dim=1000" in report.stdout
    compared = tmp_path / "comparison.json"
    comparison = run_harness("compare", str(out / "result.json"), str(out / "result.json"), "--out", str(compared))
    assert comparison.returncode == 0, comparison.stderr
    verdicts = {c["name"]: c for c in load_json(compared)["cases"]}
    pooled = len(shapes[0]["timing"]["solution"]["samples_ms"]) + len(shapes[1]["timing"]["solution"]["samples_ms"])
    assert verdicts["rowsum"]["n_baseline"] == pooled and verdicts["rowsum"]["baseline"]["shapes"] == 2
    assert verdicts["rowsum"]["verdict"] in ("unchanged", "inconclusive")


def test_a_malformed_shapes_fails_the_evaluation_as_a_case_error(
    shaped_suite: Path, write_candidate: Callable[[str, str], Path]
) -> None:
    case = shaped_suite / "t1" / "rowsum.py"
    case.write_text(ROWSUM_CASE.replace('{"batch_size": 17, "dim": 1000}', '{"rows": 17}'))
    proc = run_harness("eval", str(case), str(write_candidate("good", GOOD)), "--json", *FAST_ARGS)
    result = json.loads(proc.stdout)["result"]
    assert proc.returncode == 2 and result["status"] == "error" and result["phase"] == "loading_modules"
    assert result["case_error"] is True  # the case file is at fault: bad input, not the candidate's error
    assert result["reason"].startswith("reference case failed: ") and str(case) in result["reason"]
    assert "SHAPES['cpu'][1] overrides undefined name(s) ['rows']" in result["reason"]


class _FakeWorker:
    """Answers warm-up and timing requests with fixed figures: enough to drive one shape's timing."""

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def call(self, method: str, timeout: float, **kw: object) -> dict[str, object]:
        if method == "warmup":
            return {"estimate_ms": 1.0}
        return {"samples_ms": [1.0] * int(kw["repetitions"])}  # type: ignore[call-overload]


def test_a_timer_note_of_a_later_shape_says_which_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends import get_backend
    from harness.evaluation import shape_pass
    from harness.results import CaseResult, ShapeResult
    from harness.timing import TimingConfig

    backend = get_backend("cpu")
    plain = backend.finish_rounds
    monkeypatch.setattr(
        type(backend), "finish_rounds", lambda self, rounds, cal, n: (plain(rounds, cal, n)[0], ["a note"])
    )
    result = CaseResult(name="rowsum", tier="t1", backend="cpu", status="error")
    timing = TimingConfig(budget_ms=1.0, rounds=2, min_repetitions=2)
    worker = _FakeWorker()
    shape_pass._measure(result, ShapeResult(index=1), timing, worker, worker, False, lambda: 60.0, None, "x",
                        "shape 2 of 3: ")  # type: ignore[arg-type]  # fmt: skip
    assert "shape 2 of 3: reference timing: a note" in result.warnings
    assert "shape 2 of 3: candidate timing: a note" in result.warnings
