"""No trivial output passes any bundled case: zeros and the best constant (the reference's mean) fail
every case whose reference output is not itself constant, at the case's tolerances and at the
default ones (several cases lowered ATOL only so that zeros fail; the second gate must not depend
on that). Reference outputs at the CPU sizes, computed as the reference worker computes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.sandbox.correctness import as_output_list, compare_outputs  # noqa: E402
from harness.suite.cases import DEFAULT_TOLERANCE, case_from_file, load_case  # noqa: E402

SUITE = Path(__file__).resolve().parents[1] / "benchmark"
CASES = sorted(SUITE.glob("t[0-9]*/*.py"))


def _reference_outputs(path: Path) -> tuple[list[torch.Tensor], float, float]:
    loaded = load_case(case_from_file(path), "cpu", module_name=f"_trivial_{path.parent.name}_{path.stem}")
    torch.manual_seed(1)
    init = loaded.init_inputs()
    torch.manual_seed(1)
    model = loaded.model_class(*init)
    torch.manual_seed(2)
    inputs = loaded.inputs()
    with torch.no_grad():
        outputs = [t.detach() for t in as_output_list(model(*inputs))]
    return outputs, loaded.atol, loaded.rtol


def _constant(t: torch.Tensor) -> bool:
    return t.numel() <= 1 or bool((t == t.reshape(-1)[0]).all())


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_zeros_and_the_mean_fail_every_case_whose_reference_varies(path: Path) -> None:
    reference, atol, rtol = _reference_outputs(path)
    if all(_constant(t) for t in reference):
        pytest.skip("the reference output is constant: a constant may match it")
    trivial = {
        "zeros": [torch.zeros_like(t) for t in reference],
        "mean": [torch.full_like(t, float(t.double().mean())) if t.is_floating_point() else t * 0 for t in reference],
    }
    with torch.no_grad():
        for kind, outputs in trivial.items():
            for tolerances in ((atol, rtol), (DEFAULT_TOLERANCE, DEFAULT_TOLERANCE)):
                result = compare_outputs(reference, outputs, *tolerances)
                assert not result.ok, f"{kind} passes at atol, rtol = {tolerances}"
                assert result.gate in ("elementwise", "normalized", "constant")
            # Whatever the tolerances, the scale-free gates alone would catch it.
            loose = compare_outputs(reference, outputs, 1e9, 1e9)
            assert not loose.ok and loose.gate in ("normalized", "constant"), f"{kind} at atol=rtol=1e9"
