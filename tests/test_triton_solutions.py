"""The bundled Triton solution set (benchmark/solutions/triton) on the CPU, through Triton's interpreter.

Two checks:

- every solution against its case's ``Model`` at a small shape (the case's size names overridden),
  in this process, with the case's tolerances: seconds per case;
- the solutions whose interpreted forward takes at most a few seconds at the case's CPU size go
  through a full harness evaluation (process isolation, correctness trial, timing path, timed and
  fresh outputs) with the fewest timed calls: four of them (one per kind) in `make test`, all 16 with
  ``HARNESS_FULL_TRITON_EVAL=1``. The others (GEMM-heavy t3/t4 cases, 16k-wide rows) take minutes
  interpreted at the CPU size and are covered by the small-shape check.

On a real GPU the whole set runs with ``harness run --backend gpu --solutions benchmark/solutions/triton``
(docs/gpu-results.md has the measured table).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox.correctness import compare_outputs
from harness.suite.cases import Case, case_from_file, import_file, load_case

REPO = Path(__file__).resolve().parents[1]

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

SUITE = REPO / "benchmark"
TRITON_SET = SUITE / "solutions" / "triton"
SOLUTIONS = sorted(TRITON_SET.glob("t*/*.py"))

# Small shapes: odd sizes exercise the masks, a few exceed one block to exercise the looped paths.
SMALL: dict[str, dict[str, Any]] = {
    "add_broadcast": {"batch_size": 7, "dim": 3000},
    "batchnorm2d_inference": {"batch_size": 2, "channels": 6, "height": 9, "width": 13},
    "cross_entropy": {"batch_size": 16, "num_classes": 10000},
    "cumsum": {"batch_size": 5, "dim": 5000},
    "l2_normalize": {"batch_size": 16, "dim": 300},
    "layernorm": {"tokens": 16, "hidden": 300},
    "log_softmax": {"tokens": 4, "vocab": 40000},
    "max_dim": {"batch_size": 300, "dim": 200},
    "mean_dim": {"batch_size": 37, "dim": 3000},
    "rmsnorm_bf16": {"tokens": 16, "hidden": 300},
    "softmax": {"batch_size": 4, "dim": 20000},
    "softmax_fp16": {"batch_size": 16, "dim": 1000},
    "sum_dim": {"batch_size": 3, "rows": 700, "cols": 130},
    "attention_scores": {"batch_size": 1, "heads": 2, "seq_len": 200, "head_dim": 32},
    "batched_matmul": {"batch_size": 2, "M": 100, "K": 70, "N": 50},
    "linear_layernorm": {"batch_size": 50, "in_features": 64, "out_features": 96},
    "matmul": {"M": 100, "K": 70, "N": 90},
    "matmul_bias_gelu": {"batch_size": 50, "in_features": 64, "out_features": 96},
    "matmul_bias_relu": {"batch_size": 50, "in_features": 70, "out_features": 96},
    "cross_attention": {"batch_size": 2, "query_len": 40, "context_len": 70, "embed_dim": 64, "num_heads": 4},
    "layernorm_mlp_residual": {"batch_size": 2, "seq_len": 20, "hidden": 64, "ffn_dim": 128},
    "multihead_attention": {"batch_size": 2, "seq_len": 50, "embed_dim": 64, "num_heads": 4},
    "rotary_attention": {"batch_size": 1, "heads": 2, "seq_len": 70, "head_dim": 32},
    "transformer_encoder_layer": {
        "batch_size": 2,
        "seq_len": 30,
        "embed_dim": 64,
        "num_heads": 4,
        "ffn_dim": 128,
    },
}
ELEMENTWISE_SMALL = {"batch_size": 7, "dim": 3000}
# Cases of several shapes (SHAPES) are also checked at a small copy of what their other shapes change:
# a row that fits one block after one that does not, GPT-2's odd vocabulary, a ragged K, a sequence
# length that is no multiple of 64 with the RoPE tables built for it.
SMALL_MORE: dict[str, list[dict[str, Any]]] = {
    "softmax": [{"batch_size": 5, "dim": 1000}],
    "log_softmax": [{"tokens": 3, "vocab": 50257}],
    "layernorm": [{"tokens": 7, "hidden": 1000}],
    "attention_scores": [{"batch_size": 1, "heads": 1, "seq_len": 333, "head_dim": 32}],
    "matmul": [{"M": 33, "K": 1531, "N": 17}],
    "rotary_attention": [{"batch_size": 1, "heads": 1, "seq_len": 200, "head_dim": 32}],
    "layernorm_mlp_residual": [{"batch_size": 3, "seq_len": 77, "hidden": 64, "ffn_dim": 128}],
}

# Interpreted forward at the CPU size takes seconds: these get a full harness evaluation. Each one
# took 12-72 s on a 2-core Zen 3 (about 9 minutes for all 16), so `make test` runs one per kind
# (elementwise, reduction, normalisation, attention), and HARNESS_FULL_TRITON_EVAL=1 runs them all.
FULL_EVAL_ALL = (
    "clamp", "gelu", "leaky_relu", "relu", "scalar_affine", "sigmoid", "silu",
    "batchnorm2d_inference", "cross_entropy", "l2_normalize", "log_softmax", "max_dim", "mean_dim", "softmax",
    "multihead_attention", "rotary_attention",
)  # fmt: skip
FULL_EVAL = (
    FULL_EVAL_ALL
    if os.environ.get("HARNESS_FULL_TRITON_EVAL") == "1"
    else ("relu", "scalar_affine", "batchnorm2d_inference", "multihead_attention")
)


_EVAL_SCRIPT = """
import json, sys
from pathlib import Path
from harness.suite.cases import case_from_file
from harness.evaluation.evaluate import EvalConfig, Task
from harness.evaluation.runner import evaluate_single
from harness.timing import TimingConfig

timing = TimingConfig(
    warmup_ms=0.0, min_warmup=1, budget_ms=1.0, min_repetitions=1, max_repetitions=1, rounds=1
)
config = EvalConfig(backend="cpu", trials=1, timeout_s=600, seed=7, timing=timing, isolation="process")
result, _ = evaluate_single(Task(case_from_file(Path(sys.argv[1])), Path(sys.argv[2]), "cpu"), config)
print(json.dumps(result.to_json()))
"""


def _case_for(solution: Path) -> Case:
    return case_from_file(SUITE / solution.parent.name / solution.name)


def _outputs(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def test_the_set_covers_at_least_fifteen_cases_of_t1_to_t4() -> None:
    tiers = {p.parent.name for p in SOLUTIONS}
    assert len(SOLUTIONS) >= 15 and tiers <= {"t1", "t2", "t3", "t4"}
    for path in SOLUTIONS:
        assert (SUITE / path.parent.name / path.name).is_file(), f"{path} solves no case"
        text = path.read_text()
        # Its own kernel, or one of the kernels several solutions share (harness/solutions/triton_kernels.py).
        own_or_shared = "@triton.jit" in text or "from harness.solutions.triton_kernels import" in text
        assert own_or_shared, f"{path} has no hand-written Triton kernel"


def check_small(solution: Path) -> None:
    """Compare one solution with its case's Model at its small shapes (two seeds each); raises on a mismatch."""
    case = _case_for(solution)
    new_cls = import_file(solution, f"_triton_small_solution_{case.name}").ModelNew
    for index, sizes in enumerate([SMALL.get(case.name, ELEMENTWISE_SMALL), *SMALL_MORE.get(case.name, [])]):
        loaded = load_case(case, "cpu", module_name=f"_triton_small_case_{case.name}_{index}")
        for name, value in sizes.items():
            assert hasattr(loaded.module, name), f"{case.path} has no size {name}"
            setattr(loaded.module, name, value)
        try:
            _check_at(loaded, new_cls)
        except AssertionError as exc:
            raise AssertionError(f"at {sizes}: {exc}") from exc


def _check_at(loaded: Any, new_cls: type) -> None:
    """One size of a case: the solution against the case's Model, as the harness would judge it."""
    for seed in (0, 1):
        torch.manual_seed(seed)
        init = loaded.init_inputs()
        torch.manual_seed(seed)
        reference = loaded.model_class(*init)
        torch.manual_seed(seed)
        candidate = new_cls(*init)
        if set(candidate.state_dict()) == set(reference.state_dict()):
            candidate.load_state_dict(reference.state_dict())
        torch.manual_seed(100 + seed)
        inputs = loaded.inputs()
        before = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        with torch.no_grad():
            expected = _outputs(reference(*inputs))
            got = _outputs(candidate(*inputs))
        for x, y in zip(before, inputs, strict=True):
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y), "the solution modified its inputs"
        assert len(got) == len(expected)
        for e, g in zip(expected, got, strict=True):
            assert type(g) is torch.Tensor and g.shape == e.shape and g.dtype == e.dtype
            torch.testing.assert_close(g, e, atol=loaded.atol, rtol=loaded.rtol, equal_nan=False)
        verdict = compare_outputs(expected, got, loaded.atol, loaded.rtol)  # both gates, as the harness judges
        assert verdict.ok, verdict.reason


@pytest.fixture(scope="module")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """All small-shape checks in one child process started with TRITON_INTERPRET=1.

    The interpreter must be chosen before triton is imported, which this pytest process may
    already have done; the child also keeps the check independent of test order.
    """
    out = tmp_path_factory.mktemp("triton_small") / "results.json"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--small", str(out)],
        cwd=REPO, env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert out.is_file(), proc.stderr[-3000:]
    results: dict[str, str] = json.loads(out.read_text())
    return results


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_solution_matches_its_case_at_a_small_shape(solution: Path, small_results: dict[str, str]) -> None:
    key = f"{solution.parent.name}/{solution.stem}"
    assert small_results.get(key) == "ok", small_results.get(key, "not checked")


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL_EVAL)
def test_solution_passes_a_harness_evaluation_at_the_cpu_size(name: str) -> None:
    solution = next(p for p in SOLUTIONS if p.stem == name)
    # The library path behind `harness eval` (process isolation), with one timed call instead of the
    # CLI's minimum of ten: the interpreter makes every call cost seconds.
    proc = subprocess.run(
        [sys.executable, "-c", _EVAL_SCRIPT, str(_case_for(solution).path), str(solution)],
        cwd=REPO, env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "pass", f"{result['phase']}: {result['reason']}\n{result['stderr'][-2000:]}"
    assert result["correctness"]["fresh_output_ok"] and result["correctness"]["timed_output_ok"]


@pytest.mark.slow
def test_harness_eval_cli_passes_a_triton_solution_in_interpreter_mode() -> None:
    from tests.conftest import run_harness

    proc = run_harness(
        "eval", "benchmark/t2/log_softmax.py", "benchmark/solutions/triton/t2/log_softmax.py", "--json",
        "--trials", "1", "--budget-ms", "1", "--rounds", "1", env={"TRITON_INTERPRET": "1"}, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass" and result["correctness"]["fresh_output_ok"]


def _main(argv: list[str]) -> int:
    """``python tests/test_triton_solutions.py --small OUT.json``: run every small-shape check."""
    results = {}
    for solution in SOLUTIONS:
        key = f"{solution.parent.name}/{solution.stem}"
        try:
            check_small(solution)
            results[key] = "ok"
        except Exception:  # noqa: BLE001 - reported per case
            results[key] = traceback.format_exc(limit=6)[-3000:]
    Path(argv[1]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
