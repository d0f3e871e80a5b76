#!/usr/bin/env python3
"""Scale-free errors of honest and trivial outputs on every bundled case: the evidence behind the
second correctness gate's tolerances (harness.sandbox.correctness.NORMALIZED_TOL / CENTERED_TOL).

For each case it computes the reference outputs the way the reference worker does (seeded model,
seeded inputs, CPU sizes) for a few trial seeds, and compares with ``compare_outputs``:

- honest candidates: the solution sets given with ``--sets`` (``reference``: the A/A control,
  ``cpu``: the C++ solutions, compiled on first use, ``triton``: the Triton solutions through the
  interpreter at the small shapes of tests/test_triton_solutions.py, since they take minutes at the
  CPU sizes interpreted; ``tf32``: the reference itself with every GEMM reading TF32-rounded inputs,
  what a GPU kernel on tensor cores computes, which the interpreter does not reproduce);
- trivial candidates: all zeros, and a constant equal to the reference's mean (the best constant),
  judged at the case's tolerances and again at the default ones (``zeros@default``,
  ``constant@default``): several cases lowered ATOL only so that zeros fail, and the second gate
  must catch them without that.

It prints one row per case and set (worst over the trials) and, at the end, the largest honest
figures against the smallest trivial ones: the margins docs/correctness.md quotes.

    python3 studies/correctness_margins.py                      # reference and cpu sets, 2 trials
    python3 studies/correctness_margins.py --sets triton        # TRITON_INTERPRET=1 is set here
    python3 studies/correctness_margins.py --case softmax --json /tmp/margins.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmark"
SETS = ("reference", "cpu", "triton", "tf32")


def _tf32(x: Any) -> Any:
    """``x`` rounded to TF32 (10 mantissa bits, round to nearest), as tensor cores read float32 inputs."""
    import torch

    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        return x
    bits = x.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


def tf32_mode() -> Any:
    """A torch function mode under which every GEMM-like operator reads TF32-rounded float32 inputs:
    the reference turned into what an honest GPU kernel with TF32 tensor cores computes (the Triton
    set's GEMMs, cuBLAS with TF32 allowed), so its errors can be measured on a CPU."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    gemms = {
        torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.einsum, F.linear, F.conv2d,
        F.conv1d, F.scaled_dot_product_attention, torch.Tensor.matmul, torch.Tensor.__matmul__,
    }  # fmt: skip

    class Tf32(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func in gemms:
                args = tuple(_tf32(a) for a in args)
                kwargs = {k: _tf32(v) for k, v in kwargs.items()}
            return func(*args, **kwargs)

    return Tf32()


def _build(loaded: Any, cls: type, seed: int) -> Any:
    """``cls`` built as the workers build a model: seeded init inputs, seeded construction."""
    import torch

    torch.manual_seed(seed)
    init = loaded.init_inputs()
    torch.manual_seed(seed)
    return cls(*init)


def _outputs(model: Any, loaded: Any, seed: int) -> list[Any]:
    import torch

    from harness.sandbox.correctness import as_output_list

    torch.manual_seed(seed)
    inputs = loaded.inputs()
    with torch.no_grad():
        return [t.detach().clone() for t in as_output_list(model(*inputs))]


def _figures(reference: list[Any], candidate: list[Any], atol: float, rtol: float) -> dict[str, Any]:
    from harness.sandbox.correctness import compare_outputs

    c = compare_outputs(reference, candidate, atol, rtol)
    return {
        "ok": c.ok,
        "gate": c.gate,
        "normalized": c.normalized_error,
        "centered": c.centered_error,
        "max_abs": c.max_abs_error,
    }


def _worst(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst figures over the trials; ok only when every trial passed, the first failing gate kept."""
    first_gate = next((r["gate"] for r in rows if r["gate"]), None)
    worst: dict[str, Any] = {"ok": all(r["ok"] for r in rows), "gate": first_gate}
    for key in ("normalized", "centered", "max_abs"):
        known = [r[key] for r in rows if r[key] is not None]
        worst[key] = max(known) if known else None
    return worst


def _trivial(reference: list[Any]) -> dict[str, list[Any]]:
    import torch

    return {
        "zeros": [torch.zeros_like(t) for t in reference],
        "constant": [torch.full_like(t, float(t.double().mean()) if t.is_floating_point() else 0) for t in reference],
    }


def measure_case(case_path: Path, sets: list[str], trials: int, small: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows for one case: each solution set given, then zeros and the constant."""
    import torch

    from harness.sandbox.session import _adopt_reference_weights
    from harness.suite.cases import DEFAULT_TOLERANCE, case_from_file, load_case, load_solution_class

    case = case_from_file(case_path)
    rows = []
    for label in [*sets, "trivial"]:
        solution = SUITE / "solutions" / ("reference" if label == "tf32" else label) / case.tier / f"{case.name}.py"
        if label != "trivial" and not solution.is_file():
            continue
        loaded = load_case(case, "cpu", module_name=f"_margins_case_{case.name}_{label}")
        if label == "triton" and small is not None:  # the interpreter is too slow at the CPU sizes
            for name, value in small.get(case.name, small["__elementwise__"]).items():
                setattr(loaded.module, name, value)
        reference = _build(loaded, loaded.model_class, 11)
        per_trial: dict[str, list[dict[str, Any]]] = {}
        try:
            model = None
            if label != "trivial":
                model = _build(loaded, load_solution_class(solution, f"_margins_{label}_{case.name}"), 11)
                _adopt_reference_weights(model, reference.state_dict())
            for trial in range(trials):
                expected = _outputs(reference, loaded, 100 + trial)
                if model is not None:
                    if label == "tf32":
                        with tf32_mode():
                            got = _outputs(model, loaded, 100 + trial)
                    else:
                        got = _outputs(model, loaded, 100 + trial)
                    per_trial.setdefault(label, []).append(_figures(expected, got, loaded.atol, loaded.rtol))
                    continue
                for kind, outputs in _trivial(expected).items():
                    per_trial.setdefault(kind, []).append(_figures(expected, outputs, loaded.atol, loaded.rtol))
                    # The same output judged at the default tolerances: what the elementwise gate alone
                    # would let through had the case not lowered ATOL for exactly this reason.
                    per_trial.setdefault(f"{kind}@default", []).append(
                        _figures(expected, outputs, DEFAULT_TOLERANCE, DEFAULT_TOLERANCE)
                    )
                spread = [
                    float(t.double().std() / t.double().pow(2).mean().sqrt()) if t.numel() > 1 else 0.0
                    for t in expected
                    if t.is_floating_point()
                ]
                per_trial.setdefault("_spread", []).append({"std_over_rms": min(spread) if spread else None})
        except Exception as exc:  # noqa: BLE001 - one broken solution must not hide the others
            rows.append({"case": f"{case.tier}/{case.name}", "set": label, "error": f"{type(exc).__name__}: {exc}"})
            traceback.print_exc(limit=3)
            continue
        spread_rows = per_trial.pop("_spread", [])
        for kind, trial_rows in per_trial.items():
            default = kind.endswith("@default")
            row = {
                "case": f"{case.tier}/{case.name}",
                "set": kind,
                "atol": DEFAULT_TOLERANCE if default else loaded.atol,
                "rtol": DEFAULT_TOLERANCE if default else loaded.rtol,
            }
            row.update(_worst(trial_rows))
            if spread_rows:
                values = [r["std_over_rms"] for r in spread_rows if r["std_over_rms"] is not None]
                row["std_over_rms"] = min(values) if values else None
            rows.append(row)
        del reference
        torch.manual_seed(0)
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    """The largest honest figures and the smallest trivial ones, with the cases they come from."""
    lines = []
    honest = [r for r in rows if r["set"] in SETS and "error" not in r]
    for key in ("normalized", "centered"):
        known = [r for r in honest if r.get(key) is not None]
        if known:
            top = max(known, key=lambda r: r[key])
            lines.append(f"largest honest {key} error: {top[key]:.3g} ({top['set']} {top['case']})")
    for kind in ("zeros", "constant", "zeros@default", "constant@default"):
        trivial = [r for r in rows if r["set"] == kind]
        passed = [r["case"] for r in trivial if r["ok"]]
        verdict = f"{kind}: {len(trivial) - len(passed)} of {len(trivial)} cases fail"
        lines.append(verdict + (f"; PASS: {passed}" if passed else ""))
        for key in ("normalized", "centered"):
            known = [r for r in trivial if r.get(key) is not None]
            if known:
                low = min(known, key=lambda r: r[key])
                lines.append(f"  smallest {key} error of {kind}: {low[key]:.3g} ({low['case']})")
        gates: dict[str, int] = {}
        for r in trivial:
            gates[str(r["gate"])] = gates.get(str(r["gate"]), 0) + 1
        lines.append(f"  deciding gate: {gates}")
    failed = [f"{r['set']} {r['case']}: {r.get('gate') or r.get('error')}" for r in honest if not r.get("ok", False)]
    failed += [f"{r['set']} {r['case']}: {r['error']}" for r in rows if "error" in r]
    lines.append("honest solutions failing: " + (", ".join(failed) if failed else "none"))
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="reference,cpu", help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--case", action="append", default=[], help="only these case names (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    if unknown := set(sets) - set(SETS):
        parser.error(f"unknown set(s) {sorted(unknown)}")
    small = None
    if "triton" in sets:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton
        if os.environ["TRITON_INTERPRET"] == "1":
            sys.path.insert(0, str(REPO))
            from tests.test_triton_solutions import ELEMENTWISE_SMALL, SMALL

            small = {**SMALL, "__elementwise__": ELEMENTWISE_SMALL}
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    paths = sorted(SUITE.glob("t[0-9]*/*.py"))
    if args.case:
        paths = [p for p in paths if p.stem in args.case]
    rows: list[dict[str, Any]] = []
    print("| case | set | atol | rtol | ok | gate | normalized | centred | max abs | std/rms of ref |")
    print("|---|---|---:|---:|---|---|---:|---:|---:|---:|")
    for path in paths:
        for row in measure_case(path, sets, args.trials, small):
            rows.append(row)
            if "error" in row:
                print(f"| {row['case']} | {row['set']} | error: {row['error'][:120]} |||||||")
                continue
            print(
                f"| {row['case']} | {row['set']} | {row['atol']:g} | {row['rtol']:g} | {row['ok']} "
                f"| {row['gate'] or ''} "
                f"| {_fmt(row['normalized'])} | {_fmt(row['centered'])} | {_fmt(row['max_abs'])} "
                f"| {_fmt(row.get('std_over_rms'))} |",
                flush=True,
            )
    print()
    for line in summarize(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
