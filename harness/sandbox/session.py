"""What both roles of a worker share: the loaded case, the device, inputs, timing, and helpers.

A session is the state of one worker: `harness.sandbox.reference.ReferenceSession` (trusted) or
`harness.sandbox.candidate.CandidateSession` (runs the untrusted solution). The same classes run
in-process with ``--isolation none``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

from harness.sandbox import exchange
from harness.suite.cases import Case, LoadedCase, load_case


class SessionError(Exception):
    """An expected failure inside a session, reported to the supervisor with its phase."""

    def __init__(self, message: str, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class _Session:
    """State shared by both roles: the loaded case, the device, the staging region and timing."""

    def __init__(self, backend_name: str, device: str) -> None:
        from harness.backends import get_backend

        self.backend = get_backend(backend_name)
        self.device = device
        self.loaded: LoadedCase | None = None
        self.model: Any = None
        self.timing_inputs: list[Any] | None = None
        self.last_output: Any = None
        self.host_staging: Any = None  # uint8 tensor over the shared memfd the supervisor attached

    def attach_staging(self, mapping: Any) -> None:
        """Take the shared host staging region (a writable mapping the transport received)."""
        self.host_staging = exchange.host_region(mapping)

    def ping(self) -> dict[str, Any]:
        """Answered once the worker is set up (device context made): the supervisor waits for it."""
        return {}

    def _load_case(self, case: dict[str, Any], module_suffix: str, shape: int = 0) -> LoadedCase:
        c = Case(name=case["name"], tier=case["tier"], path=Path(case["path"]))
        name = f"_harness_case_{c.tier}_{c.name}_{module_suffix}"
        return load_case(c, self.backend.name, module_name=name, shape=shape)

    def _inputs(self, seed: int) -> list[Any]:
        import torch

        assert self.loaded is not None
        self.backend.seed(seed)
        with torch.device(self.device):
            return [_to_device(x, self.device) for x in self.loaded.inputs()]

    def _init_inputs(self, seed: int) -> list[Any]:
        """``get_init_inputs()`` at the current shape, drawn as `_build` draws them (same seed, device)."""
        import torch

        assert self.loaded is not None
        self.backend.seed(seed)
        with torch.device(self.device):
            return self.loaded.init_inputs()

    def _build(self, cls: type, seed: int) -> Any:
        import torch

        init = self._init_inputs(seed)
        with torch.device(self.device):
            self.backend.seed(seed)
            model = cls(*init)
        if hasattr(model, "to"):
            model = model.to(self.device)
        return model

    def _forward(self, inputs: list[Any]) -> Any:
        import torch

        with torch.no_grad():
            return self.model(*inputs)

    def warmup(self, calls: int, host_time: bool = False) -> dict[str, Any]:
        """Untimed calls on the timing inputs; a median estimate of a call, and with ``host_time`` the
        host's time per call (median of a few more calls, each started on an idle device: how long
        the host code of one call takes when nothing is queued ahead of it)."""
        assert self.timing_inputs is not None
        inputs = self.timing_inputs
        for _ in range(calls):
            self._forward(inputs)
        host: list[float] = []
        for _ in range(min(calls, 5) if host_time else 0):
            self.backend.synchronize(self.device)
            t0 = time.perf_counter()
            self._forward(inputs)
            host.append((time.perf_counter() - t0) * 1000.0)
        self.backend.synchronize(self.device)
        estimate = self.backend.measure(lambda: self._forward(inputs), 3, self.device, False)
        return {"estimate_ms": sorted(estimate)[1], "host_ms": statistics.median(host) if host else 0.0}

    def time(
        self,
        repetitions: int,
        flush_cache: bool,
        lead_ms: float = 0.0,
        calibration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Per-call times of ``repetitions`` calls on the timing inputs, as the backend's raw series.

        ``lead_ms`` and ``calibration`` come from the reference worker (trusted): both sides are timed
        with the same lead and corrected with the same constants, which a candidate cannot skew.
        """
        assert self.timing_inputs is not None
        inputs = self.timing_inputs
        result: list[Any] = [None]

        def call() -> None:
            result[0] = self._forward(inputs)

        series = self.backend.series(call, repetitions, self.device, flush_cache, lead_ms, calibration)
        self.last_output = result[0]
        return series

    def timing_notes(self) -> dict[str, Any]:
        """What the backend's timer noticed since the last request (e.g. work left on other streams)."""
        return {"notes": self.backend.timing_notes()}




def _poison(outputs: list[Any], keep: list[Any]) -> None:
    """Write garbage over every output tensor whose storage is not one of ``keep``'s."""
    import torch

    kept = set()
    for t in keep:
        if _is_tensor(t):
            with contextlib.suppress(Exception):
                kept.add(t.untyped_storage().data_ptr())
    with torch.no_grad():
        for out in outputs:
            if type(out) is not torch.Tensor or out.numel() == 0:
                continue
            with contextlib.suppress(Exception):
                if out.untyped_storage().data_ptr() in kept:
                    continue
                if out.dtype.is_floating_point or out.dtype.is_complex:
                    out.fill_(float("nan"))
                else:
                    out.bitwise_not_()


def _adopt_reference_weights(model: Any, reference_state: dict[str, Any]) -> None:
    """Give ModelNew the reference's weights when its parameters are laid out the same way."""
    if not hasattr(model, "state_dict"):
        return
    state = model.state_dict()
    if state.keys() != reference_state.keys():
        return
    if all(
        getattr(state[k], "shape", None) == getattr(v, "shape", None)
        and getattr(state[k], "dtype", None) == getattr(v, "dtype", None)
        for k, v in reference_state.items()
    ):
        model.load_state_dict(reference_state)


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _to_device(x: Any, device: str) -> Any:
    return x.to(device) if _is_tensor(x) else x


def _detached(outputs: list[Any]) -> list[Any]:
    return [o.detach().clone() if _is_tensor(o) else o for o in outputs]


def _plain(outputs: list[Any], device: str) -> list[Any]:
    """Outputs as plain tensors on ``device`` for the wire; anything else becomes a small marker dict."""
    import torch

    expected = torch.device(device)
    plain: list[Any] = []
    for o in outputs:
        if type(o) is not torch.Tensor:
            plain.append({"not_a_tensor": type(o).__name__})
        elif o.device.type != expected.type or (
            expected.index is not None and o.device.index is not None and o.device.index != expected.index
        ):
            plain.append({"wrong_device": str(o.device), "expected": str(expected)})
        else:
            plain.append(o)
    return plain


def _same(before: list[Any], after: list[Any]) -> bool:
    import torch

    for b, a in zip(before, after, strict=True):
        if not _is_tensor(b):
            continue
        if b.shape != a.shape or b.dtype != a.dtype:
            return False
        if torch.equal(b, a):  # the usual answer, with no temporaries (inputs can be 100 MB)
            continue
        # NaN != NaN: unchanged only when the NaNs sit where they sat and everything else matches.
        if not (b.is_floating_point() or b.is_complex()):
            return False
        nan_b, nan_a = torch.isnan(b), torch.isnan(a)
        if not (torch.equal(nan_b, nan_a) and torch.equal(b.masked_fill(nan_b, 0), a.masked_fill(nan_a, 0))):
            return False
    return True


def _same_values(a: list[Any], b: list[Any]) -> bool:
    """Whether two argument lists are equal value for value (tensors by shape, dtype and contents).

    Anything that cannot be compared counts as different: the caller then rebuilds, which is safe.
    """
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if _is_tensor(x) or _is_tensor(y):
            if not (_is_tensor(x) and _is_tensor(y)) or x.device != y.device or not _same([x], [y]):
                return False
            continue
        try:
            if type(x) is not type(y) or bool(x != y):
                return False
        except Exception:  # noqa: BLE001 - e.g. a list holding tensors: ambiguous truth value
            return False
    return True


def _model_tensors(model: Any) -> list[Any]:
    """The parameters and buffers of a module (nothing for a plain callable)."""
    try:
        return list(model.parameters()) + list(model.buffers())
    except Exception:  # noqa: BLE001 - a Model need not be an nn.Module
        return []


def _nbytes(tensors: list[Any]) -> int:
    return sum(int(t.numel() * t.element_size()) for t in tensors if _is_tensor(t))


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
