from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import BadInput, CaseLoadError
from harness.suite.cases import (
    BACKEND_ONLY_IMPORTS,
    apply_sizes,
    case_from_file,
    discover,
    import_file,
    load_case,
    solution_paths,
)


def test_discovery_orders_by_tier_and_reads_summaries(suite: Path) -> None:
    cases = discover(suite)
    assert [(c.tier, c.name) for c in cases] == [("t1", "npu_only"), ("t1", "scale"), ("t2", "linear_relu")]
    assert cases[1].summary == "Scales a vector by two: a tiny test case."


def test_filters_by_tier_name_and_keyword(suite: Path) -> None:
    assert [c.name for c in discover(suite, tiers=["t2"])] == ["linear_relu"]
    assert [c.name for c in discover(suite, names=["scale"])] == ["scale"]
    assert [c.name for c in discover(suite, keyword="LINEAR")] == ["linear_relu"]


def test_case_importing_torch_npu_is_skipped_elsewhere_with_a_reason(suite: Path) -> None:
    npu = next(c for c in discover(suite) if c.name == "npu_only")
    assert npu.backends == ("npu",)
    assert "only on backend(s) npu" in (npu.skip_reason("cpu") or "")
    assert npu.skip_reason("npu") is None


def test_duplicate_case_names_across_tiers_are_rejected(suite: Path) -> None:
    (suite / "t2" / "scale.py").write_text((suite / "t1" / "scale.py").read_text())
    with pytest.raises(BadInput, match="duplicate case name 'scale'"):
        discover(suite)


def test_unknown_case_and_bad_tier_name_are_bad_input(suite: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such case"):
        discover(suite, names=["nope"])
    with pytest.raises(BadInput, match="not a tier name"):
        discover(suite, tiers=["tier1"])
    with pytest.raises(BadInput, match="no suite at .*missing.*pass --suite DIR"):
        discover(tmp_path / "missing")


def test_syntax_error_in_case_names_file_and_line(suite: Path) -> None:
    (suite / "t1" / "broken.py").write_text("def get_inputs(:\n")
    with pytest.raises(CaseLoadError, match=r"broken.py:1: syntax error"):
        discover(suite)


def test_sizes_override_module_names_for_the_backend(suite: Path) -> None:
    case = case_from_file(suite / "t1" / "scale.py")
    assert load_case(case, "gpu", module_name="_t_gpu").module.n == 1 << 20
    assert load_case(case, "cpu", module_name="_t_cpu").module.n == 4096


def test_sizes_naming_an_undefined_name_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "c.py"
    path.write_text("SIZES = {'gpu': {'nope': 1}}\n")
    module = import_file(path, "_t_sizes")
    with pytest.raises(CaseLoadError, match="undefined name"):
        apply_sizes(path, module, "gpu")


def test_missing_contract_function_is_named(tmp_path: Path) -> None:
    (tmp_path / "t1").mkdir()
    path = tmp_path / "t1" / "half.py"
    path.write_text("import torch.nn as nn\nclass Model(nn.Module):\n    pass\n")
    with pytest.raises(CaseLoadError, match="missing get_inputs"):
        load_case(case_from_file(path), "cpu")


def test_import_error_in_user_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(CaseLoadError) as info:
        import_file(path, "_t_bad")
    assert str(info.value) == f"{path}: import failed: RuntimeError: boom"


def test_solution_lookup_tiered_flat_and_attempt_folder(suite: Path, tmp_path: Path) -> None:
    case = case_from_file(suite / "t1" / "scale.py")
    sols = tmp_path / "s"
    (sols / "t1").mkdir(parents=True)
    assert solution_paths(sols, case) == []
    (sols / "scale.py").write_text("")
    assert solution_paths(sols, case) == [sols / "scale.py"]
    folder = sols / "t1" / "scale"
    folder.mkdir()
    (folder / "b.py").write_text("")
    (folder / "a.py").write_text("")
    assert solution_paths(sols, case) == [folder / "a.py", folder / "b.py"]


@pytest.mark.parametrize(
    ("imports", "backends"),
    [
        ("import torch_npu", ("npu",)),
        ("import torch_npu.npu as npu", ("npu",)),
        ("from torch_npu.contrib import transfer_to_npu", ("npu",)),
        # triton-ascend's kernels import `triton`, exactly like CUDA ones: nothing backend-only in that
        ("import triton\nimport triton.language as tl", ("cpu", "gpu", "npu")),
    ],
)
def test_only_torch_npu_ties_a_case_to_the_npu_backend(tmp_path: Path, imports: str, backends: tuple[str, ...]) -> None:
    path = tmp_path / "t1" / "case.py"
    path.parent.mkdir()
    path.write_text(f"{imports}\n")
    assert case_from_file(path).backends == backends


def test_backend_only_imports_name_only_modules_that_an_install_provides() -> None:
    # triton-ascend ships the package `triton`; a `triton_ascend` entry could never match a real case
    assert BACKEND_ONLY_IMPORTS == {"torch_npu": "npu"}
