"""The typed replies of the reference worker that the supervisor acts on.

They cross the process boundary as JSON (`harness.sandbox.wire`) and are rebuilt on the other side
with `from_json`, which checks every field: the supervisor never reads a reply as a bare dict whose
keys are spelled in two places.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError


class ProtocolError(HarnessError):
    """A worker's reply lacks a field or has one of the wrong type."""


def _number(data: dict[str, Any], key: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"reply field {key!r} is not a finite number: {value!r}")
    return float(value)


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"reply field {key!r} is not a count: {value!r}")
    return value


@dataclass(frozen=True)
class PrepareReply:
    """What the reference knows of a case once it has drawn the inputs and computed the outputs."""

    atol: float
    rtol: float
    flops: int | None
    input_bytes: int
    output_bytes: int
    outputs: int
    staging: str | None  # "host" | "cuda" | None: how the candidate gets its inputs
    stage_bytes: int
    param_bytes: int
    dtypes: tuple[str, ...] = ()
    shapes: int = 1  # how many shapes the case has on this backend (harness.suite.shapes)
    sizes: dict[str, Any] = field(default_factory=dict)  # the sizes that tell this shape from the others

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dtypes"] = list(self.dtypes)
        return data

    @classmethod
    def from_json(cls, data: Any) -> PrepareReply:
        if not isinstance(data, dict):
            raise ProtocolError("the reference's prepare reply is not an object")
        flops = data.get("flops")
        if flops is not None and (isinstance(flops, bool) or not isinstance(flops, int)):
            raise ProtocolError(f"reply field 'flops' is not an integer: {flops!r}")
        staging = data.get("staging")
        if staging not in (None, "host", "cuda"):
            raise ProtocolError(f"reply field 'staging' is unknown: {staging!r}")
        dtypes = data.get("dtypes") or []
        if not isinstance(dtypes, list) or not all(isinstance(d, str) for d in dtypes):
            raise ProtocolError("reply field 'dtypes' is not a list of names")
        sizes = data.get("sizes") or {}
        if not isinstance(sizes, dict) or not all(isinstance(k, str) for k in sizes):
            raise ProtocolError("reply field 'sizes' is not an object of names")
        return cls(
            atol=_number(data, "atol"),
            rtol=_number(data, "rtol"),
            flops=flops,
            input_bytes=_count(data, "input_bytes"),
            output_bytes=_count(data, "output_bytes"),
            outputs=_count(data, "outputs") or 1,
            staging=staging,
            stage_bytes=_count(data, "stage_bytes"),
            param_bytes=_count(data, "param_bytes"),
            dtypes=tuple(dtypes),
            shapes=_count(data, "shapes") or 1,
            sizes=sizes,
        )


@dataclass(frozen=True)
class BaselineReply:
    """The reference timed alone before any candidate code ran (event-timed devices)."""

    estimate_ms: float
    host_ms: float
    lead_ms: float
    calibration: dict[str, Any] | None
    series: dict[str, Any] = field(default_factory=dict)
    warmup_calls: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> BaselineReply:
        if not isinstance(data, dict):
            raise ProtocolError("the reference's baseline reply is not an object")
        calibration = data.get("calibration")
        series = data.get("series")
        if calibration is not None and not isinstance(calibration, dict):
            raise ProtocolError("reply field 'calibration' is not an object")
        if not isinstance(series, dict):
            raise ProtocolError("reply field 'series' is not an object")
        return cls(
            estimate_ms=_number(data, "estimate_ms"),
            host_ms=_number(data, "host_ms", 0.0),
            lead_ms=_number(data, "lead_ms", 0.0),
            calibration=calibration,
            series=series,
            warmup_calls=_count(data, "warmup_calls"),
        )
