"""Staged inputs and exported outputs (harness.sandbox.exchange): layouts, views, the unchanged check, bounds."""

from __future__ import annotations

import json
import mmap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from harness.sandbox import exchange
from harness.sandbox.correctness import _device_digest
from tests.conftest import FAST_ARGS, run_harness


def _region(nbytes: int) -> torch.Tensor:
    return exchange.host_region(mmap.mmap(-1, nbytes))


def test_plain_tensors_and_scalars_are_staged_and_read_back_bit_for_bit() -> None:
    values = [torch.randn(3, 5), torch.tensor([1, 2, 3], dtype=torch.int64), 7, 0.5, None,
              torch.tensor([float("nan"), 1.0]).to(torch.bfloat16)]  # fmt: skip
    layout = exchange.plan_layout(values)
    assert layout is not None
    region = _region(exchange.layout_bytes(layout))
    exchange.write_into(region, layout, values)
    seen = exchange.views(region, exchange.check_layout(layout, region.numel()))
    assert seen[2:5] == [7, 0.5, None]
    for got, want in zip([seen[0], seen[1], seen[5]], [values[0], values[1], values[5]], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))
    assert all(item["tensor"]["offset"] % exchange.ALIGN == 0 for item in layout if "tensor" in item)
    assert exchange.unchanged(region, layout, values)


def test_a_write_into_a_staged_input_is_seen_even_when_it_keeps_nans_in_place() -> None:
    values = [torch.tensor([float("nan"), 1.0, 2.0, 3.0])]
    layout = exchange.plan_layout(values)
    assert layout is not None
    region = _region(exchange.layout_bytes(layout))
    exchange.write_into(region, layout, values)
    view = exchange.views(region, layout)[0]
    view[3] = 3.0000002  # one ulp away: equal to the eye, not to the bytes
    assert not exchange.unchanged(region, layout, values)
    view[3] = 3.0
    assert exchange.unchanged(region, layout, values)
    view[0] = float("nan")  # a NaN written over a NaN with the same bits is no change
    assert exchange.unchanged(region, layout, values)


@pytest.mark.parametrize(
    "values",
    [
        [torch.randn(4, 4).t()],  # not contiguous: its strides would change on the way
        [torch.randn(3, requires_grad=True)],
        [object()],
        [float("inf")],
    ],
)
def test_what_cannot_be_staged_falls_back_to_drawing(values: list[object]) -> None:
    assert exchange.plan_layout(values) is None


@pytest.mark.parametrize(
    "layout",
    [
        [{"tensor": {"dtype": "float32", "shape": [1024], "offset": 0}}],  # larger than the region
        [{"tensor": {"dtype": "float32", "shape": [4], "offset": 100}}],  # not on the alignment
        [{"tensor": {"dtype": "object", "shape": [4], "offset": 0}}],
        [{"tensor": {"dtype": "float32", "shape": [-1], "offset": 0}}],
        [{"neither": 1}],
        "not a list",
    ],
)
def test_a_layout_that_points_outside_its_region_is_refused(layout: object) -> None:
    with pytest.raises(exchange.ExchangeError):
        exchange.check_layout(layout, 1024)


def test_device_fingerprint_digest_tells_changed_from_unchanged_outputs() -> None:
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    same = _device_digest(x, 1e-2) == _device_digest(x.clone(), 1e-2)
    within_step = _device_digest(x, 1e-2) == _device_digest(x + 1e-9, 1e-2)
    moved = _device_digest(x, 1e-2) == _device_digest(torch.roll(x, 1), 1e-2)
    nan = x.clone()
    nan[5] = float("nan")
    assert same and within_step and not moved
    assert _device_digest(nan, 1e-2) != _device_digest(x, 1e-2)


def test_an_ipc_handle_of_the_wrong_length_is_refused_before_the_driver_sees_it() -> None:
    with pytest.raises(exchange.ExchangeError, match="64 bytes"):
        exchange.OpenedRegion("abcd", "cuda:0")
    with pytest.raises(exchange.ExchangeError):
        exchange.import_cuda_tensors([{"handle": "00" * 64, "offset": 0, "dtype": "object", "shape": [1]}], "cuda:0")


@pytest.mark.parametrize("isolation,staged", [("process", True), ("none", False)])
def test_a_candidate_in_its_own_process_runs_on_the_inputs_the_reference_staged(
    suite: Path, solutions: Path, isolation: str, staged: bool
) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--json", "--isolation", isolation,
        *FAST_ARGS,
    )  # fmt: skip
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass", result["reason"]
    assert result["correctness"]["staged_inputs"] is staged
    assert result["correctness"]["inputs_unchanged"] is True


def test_a_candidate_that_writes_into_staged_inputs_fails_and_the_reference_keeps_its_own(
    suite: Path, write_candidate: Callable[[str, str], Path]
) -> None:
    candidate = write_candidate(
        "writes_inputs",
        """
        import torch.nn as nn


        class ModelNew(nn.Module):
            def __init__(self, factor):
                super().__init__()

            def forward(self, x):
                return x.mul_(2.0)  # right values, written over its input
        """,
    )
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(candidate), "--json", *FAST_ARGS)
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "fail" and "modified its input" in result["reason"]
    assert result["correctness"]["staged_inputs"] is True


def test_a_reference_reply_with_a_missing_or_wrong_field_is_a_protocol_error_not_a_key_error() -> None:
    from harness.sandbox.protocol import BaselineReply, PrepareReply, ProtocolError

    good = {"atol": 0.01, "rtol": 0.01, "flops": None, "input_bytes": 8, "output_bytes": 8, "outputs": 1,
            "staging": "host", "stage_bytes": 256, "param_bytes": 0, "dtypes": ["float32"]}  # fmt: skip
    assert PrepareReply.from_json(PrepareReply.from_json(good).to_json()) == PrepareReply.from_json(good)
    for bad in ({**good, "atol": None}, {**good, "staging": "elsewhere"}, {**good, "input_bytes": -1}, "x"):
        with pytest.raises(ProtocolError):
            PrepareReply.from_json(bad)
    with pytest.raises(ProtocolError):
        BaselineReply.from_json({"estimate_ms": 1.0, "series": None})
