"""What runs inside worker processes: the reference session (trusted), the candidate session, and
the process set-up that keeps a candidate in its box.

A worker serves requests ``(seq, method, kwargs, has_blob)`` from the supervisor and answers with
`harness.wire` bytes that echo ``seq``. The reference worker only ever imports suite files, so it is
reused across cases; a candidate worker imports one untrusted file and is discarded after its case.

A candidate runs two processes deep (see docs/security.md):

    keeper (trusted: child subreaper, Landlock, output capture)
      └── candidate worker (imports the solution; stdout/stderr are pipes to the keeper)
            └── whatever the candidate starts: it can never leave the keeper's subtree

The same session classes also run in-process (``--isolation none``) for debugging and for
measuring what isolation costs.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import resource
import select
import signal
import statistics
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import exchange, wire
from harness.cases import Case, LoadedCase, load_case, load_solution_class
from harness.correctness import as_output_list, compare_outputs, output_fingerprint
from harness.errors import CaseLoadError

TOKEN_ENV = "HARNESS_EVAL_TOKEN"
# On a device the reference keeps every input set of a case only while they fit in this many bytes
# together; larger sets are drawn again from their seeds (a few milliseconds per gigabyte on a GPU).
_KEEP_INPUT_BYTES = 2 << 30
_KEEP_REGION_BYTES = 1 << 30  # inherited by everything a candidate starts; used to find leftovers

PHASE_LOADING = "loading_modules"
PHASE_INIT = "model_init"
PHASE_CORRECTNESS = "correctness_check"
PHASE_BASELINE = "measuring_baseline"
PHASE_SOLUTION = "measuring_solution"
PHASES = (PHASE_LOADING, PHASE_INIT, PHASE_CORRECTNESS, PHASE_BASELINE, PHASE_SOLUTION)


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

    def _load_case(self, case: dict[str, Any], module_suffix: str) -> LoadedCase:
        c = Case(name=case["name"], tier=case["tier"], path=Path(case["path"]))
        return load_case(c, self.backend.name, module_name=f"_harness_case_{c.tier}_{c.name}_{module_suffix}")

    def _inputs(self, seed: int) -> list[Any]:
        import torch

        assert self.loaded is not None
        self.backend.seed(seed)
        with torch.device(self.device):
            return [_to_device(x, self.device) for x in self.loaded.inputs()]

    def _build(self, cls: type, seed: int) -> Any:
        import torch

        assert self.loaded is not None
        self.backend.seed(seed)
        with torch.device(self.device):
            init = self.loaded.init_inputs()
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


class ReferenceSession(_Session):
    """Trusted: computes reference outputs, stages inputs, compares candidates' outputs, times the reference."""

    def __init__(self, backend_name: str, device: str) -> None:
        super().__init__(backend_name, device)
        self.expected: dict[str, list[Any]] = {}
        self.inputs: dict[str, list[Any]] = {}
        self.seeds: dict[str, int] = {}
        self.layouts: dict[str, list[dict[str, Any]] | None] = {}
        self.staged_key: str | None = None
        self.counter = 0
        self._cuda_region: exchange.CudaRegion | None = None

    def prepare(
        self, case: dict[str, Any], init_seed: int, trial_seeds: list[int], timing_seed: int, fresh_seed: int
    ) -> dict[str, Any]:
        """Load the case, build ``Model``, draw every input set once and compute its expected outputs.

        The input sets are kept: the candidate runs on staged copies of them (`stage`) instead of
        drawing them again. Anything the case file does wrong becomes a SessionError naming the file
        and the step.
        """
        self.finish()  # the previous case's tensors go first: the peak memory is one case's
        self.counter += 1
        path = case.get("path", "?")
        step = "loading the case"
        try:
            self.loaded = self._load_case(case, f"ref{self.counter}")
            step = "Model(*get_init_inputs())"
            self.model = self._build(self.loaded.model_class, init_seed)
            seeds = {str(i): seed for i, seed in enumerate(trial_seeds)}
            seeds["timed"] = timing_seed
            seeds["fresh"] = fresh_seed
            self.seeds = seeds
            for key, seed in seeds.items():
                step = "get_inputs()"
                inputs = self._inputs(seed)
                self.inputs[key] = inputs
                if key == "timed":
                    # the reference times on inputs of its own, never on the region the candidate shares
                    self.timing_inputs = inputs
                step = "Model.forward"
                self.expected[key] = _detached(as_output_list(self._forward(inputs)))
                if key != "timed" and not self._keep_inputs(inputs):
                    del self.inputs[key]  # drawn again from its seed when staged and when checked
            self.backend.synchronize(self.device)
            step = "get_flops()"
            flops = self.loaded.flops()
            step = "ATOL/RTOL"
            atol, rtol = self.loaded.atol, self.loaded.rtol
        except CaseLoadError as exc:
            raise SessionError(str(exc), PHASE_LOADING) from exc
        except Exception as exc:
            raise SessionError(
                f"{path}: {step} raised {type(exc).__name__}: {_line(exc)}", PHASE_LOADING
            ) from exc
        layout = exchange.plan_layout(self.timing_inputs or [])
        if any(exchange.plan_layout(values) != layout for values in self.inputs.values()):
            layout = None  # get_inputs() gave differently shaped sets: no staging for this case
        self.layouts = {key: layout for key in self.seeds}  # every set has the timing set's shapes
        staging = self.backend.staging if layout is not None else None
        return {
            "atol": atol,
            "rtol": rtol,
            "flops": flops,
            "input_bytes": _nbytes(self.timing_inputs or []),
            "output_bytes": _nbytes(self.expected["timed"]),
            "outputs": len(self.expected["timed"]),
            "staging": staging,
            "stage_bytes": exchange.layout_bytes(layout) if layout is not None else 0,
            # for the speed of light (harness.speed_of_light): weights are read on every call too
            "param_bytes": _nbytes(_model_tensors(self.model)),
            "dtypes": sorted(
                {str(t.dtype) for t in (self.timing_inputs or []) + self.expected["timed"] if _is_tensor(t)}
            ),
        }

    def _keep_inputs(self, inputs: list[Any]) -> bool:
        """Whether an input set stays in memory (else it is drawn again when needed): always on the
        host, where drawing is slow; on a device only while every set together stays small."""
        if self.device == "cpu":
            return True
        return _nbytes(inputs) * len(getattr(self, "seeds", {}) or [1]) <= _KEEP_INPUT_BYTES

    def _input_set(self, key: str) -> list[Any]:
        """Input set ``key``: kept from `prepare`, or drawn again from its seed (same values)."""
        kept = self.inputs.get(key)
        return kept if kept is not None else self._inputs(self.seeds[key])

    def baseline(self, timing: dict[str, Any], flush_cache: bool) -> dict[str, Any]:
        """Warm the reference up and time one round of it *before any candidate code has run*.

        Returns the estimate and host time per call, the lead both sides will be timed with, the
        backend's calibration (trusted constants for both sides) and the round's raw series: the
        supervisor compares the reference's later rounds with it, so work a candidate leaves running
        on the device while the reference is timed cannot go unnoticed.
        """
        from harness.timing import TimingConfig, plan_repetitions, warmup_calls

        config = TimingConfig(**timing)
        first = self.warmup(config.min_warmup, host_time=True)
        extra = warmup_calls(first["estimate_ms"], config) - config.min_warmup
        warm = self.warmup(extra, host_time=True) if extra > 0 else first
        calibration = self.backend.timing_calibration(self.device, flush_cache)
        lead = self.backend.lead_for(
            max(first["host_ms"], warm["host_ms"]), flush_cache, calibration, warm["estimate_ms"]
        )
        per_round = max(3, plan_repetitions(warm["estimate_ms"], config) // config.rounds)
        series = self.time(per_round, flush_cache, lead, calibration)
        return {
            "estimate_ms": warm["estimate_ms"],
            "host_ms": max(first["host_ms"], warm["host_ms"]),
            "lead_ms": lead,
            "calibration": calibration,
            "series": series,
            "warmup_calls": config.min_warmup + max(0, extra),
        }

    def stage(self, key: str) -> dict[str, Any]:
        """Copy input set ``key`` into the staging region; its layout and where the region is."""
        layout = self.layouts.get(key)
        if layout is None:
            raise SessionError(f"input set {key} cannot be staged", PHASE_CORRECTNESS)
        values = self._input_set(key)
        if exchange.plan_layout(values) != layout:
            raise SessionError(f"input set {key} differs in shape from the timing set", PHASE_CORRECTNESS)
        region = self._region(exchange.layout_bytes(layout))
        exchange.write_into(region, layout, values)
        self.backend.synchronize(self.device)
        self.staged_key = key
        if self.backend.staging == "cuda":
            assert self._cuda_region is not None
            return {"region": self._cuda_region.describe(), "layout": layout}
        return {"region": {"kind": "host", "bytes": int(region.numel())}, "layout": layout}

    def _region(self, nbytes: int) -> Any:
        if self.backend.staging == "cuda":
            if self._cuda_region is None or self._cuda_region.nbytes < nbytes:
                if self._cuda_region is not None:
                    self._cuda_region.close()
                    self._cuda_region = None
                self._cuda_region = exchange.CudaRegion(nbytes, self.device)
            return self._cuda_region.tensor
        if self.host_staging is None or self.host_staging.numel() < nbytes:
            raise SessionError("no staging region of the size needed is attached", PHASE_CORRECTNESS)
        return self.host_staging

    def compare(self, key: str, forward: Any) -> dict[str, Any]:
        """Compare the candidate's outputs for ``key`` with the reference's.

        ``forward`` is the candidate worker's whole reply, as the raw bytes the supervisor passed on
        (decoded here with `harness.wire`, never unpickled) or, in-process, the reply's value. Outputs
        the candidate exported as CUDA IPC handles are copied into this process first. When the
        candidate ran on staged inputs of ``key``, the verdict also says whether they are unchanged.
        """
        assert self.loaded is not None
        if isinstance(forward, (bytes, bytearray, memoryview)):
            # Shared with the candidate: tensors are read where they lie, each chunk copied before
            # it is checked (harness.correctness), so later writes by the candidate change nothing.
            reply = wire.decode(forward, copy=False)
            if not isinstance(reply, dict) or not reply.get("ok") or not isinstance(reply.get("value"), dict):
                raise SessionError("the candidate's reply carries no outputs", PHASE_CORRECTNESS)
            forward = reply["value"]
        outputs = forward.get("outputs") if isinstance(forward, dict) else None
        if not isinstance(outputs, list):
            raise SessionError("the candidate's reply carries no outputs", PHASE_CORRECTNESS)
        unchanged = None
        if self.staged_key == key:
            layout = self.layouts[key]
            assert layout is not None
            region = self._region(exchange.layout_bytes(layout))
            unchanged = exchange.unchanged(region, layout, self._input_set(key))
        try:
            outputs = self._imported(outputs)
        except exchange.ExchangeError as exc:
            verdict: dict[str, Any] = {"ok": False, "reason": f"its outputs could not be read: {exc}"}
            verdict["inputs_unchanged"] = unchanged
            return verdict
        result = compare_outputs(self.expected[key], outputs, self.loaded.atol, self.loaded.rtol)
        verdict = asdict(result)
        verdict["inputs_unchanged"] = unchanged
        if key == "0" and result.ok:
            verdict["output_fingerprint"] = output_fingerprint(outputs, self.loaded.atol)
        return verdict

    def _imported(self, outputs: list[Any]) -> list[Any]:
        """``outputs`` with every CUDA IPC description replaced by a private copy of that tensor."""
        specs = [o["cuda_ipc"] for o in outputs if isinstance(o, dict) and isinstance(o.get("cuda_ipc"), dict)]
        if not specs:
            return outputs
        if self.backend.staging != "cuda":
            raise exchange.ExchangeError("CUDA IPC outputs on a backend that does not use them")
        copies = iter(exchange.import_cuda_tensors(specs, self.device))
        return [next(copies) if isinstance(o, dict) and isinstance(o.get("cuda_ipc"), dict) else o for o in outputs]

    def environment(self) -> dict[str, Any]:
        """The backend's facts about this worker's device (asked once per run)."""
        import torch

        from harness import speed_of_light

        env = self.backend.environment(self.device)
        env["torch"] = torch.__version__
        try:
            import triton

            env["triton"] = triton.__version__
        except Exception:
            env["triton"] = None
        peaks = speed_of_light.peaks_for(env)  # measured here for a CPU, in the trusted process
        env["peaks"] = peaks.to_json() if peaks else None
        return env

    def finish(self) -> dict[str, Any]:
        """Drop this case's tensors so the worker can be reused.

        On a device the freed memory goes back to the driver (the caching allocator would keep it,
        and the next case's candidate, another process, could not have it), and a staging region
        above `_KEEP_REGION_BYTES` is freed; a smaller one is kept for the next case.
        """
        self.expected = {}
        self.inputs = {}
        self.seeds = {}
        self.layouts = {}
        self.staged_key = None
        self.model = self.timing_inputs = self.last_output = None
        if self._cuda_region is not None and self._cuda_region.nbytes > _KEEP_REGION_BYTES:
            self._cuda_region.close()
            self._cuda_region = None
        if self.device != "cpu":
            self.backend.release_memory(self.device)
        return {}


class CandidateSession(_Session):
    """Untrusted side: imports the candidate, runs it, and reports what it returned."""

    def __init__(self, backend_name: str, device: str) -> None:
        super().__init__(backend_name, device)
        self.trial_seeds: list[int] = []
        self.fresh_seed = 0
        self.timing_seed = 0
        self._opened: dict[str, exchange.OpenedRegion] = {}
        self._exported: list[Any] = []  # tensors whose IPC handles the reference may still open
        self.ipc_outputs = False  # set where this session runs in a process of its own

    def load(
        self,
        case: dict[str, Any],
        solution_path: str,
        init_seed: int,
        trial_seeds: list[int],
        timing_seed: int,
        fresh_seed: int,
        timed: dict[str, Any] | None = None,
        timing_later: bool = False,
    ) -> dict[str, Any]:
        """Import the solution and build ``ModelNew``; timing inputs are copied from the staged set
        ``timed`` (or drawn from the seed where the reference could not stage them), or, with
        ``timing_later``, taken by a later `take_timing_inputs` (the load then overlaps the reference's
        prepare)."""
        try:
            self.loaded = self._load_case(case, "cand")
            reference_state = self._build(self.loaded.model_class, init_seed).state_dict()
            cls = load_solution_class(Path(solution_path))
        except Exception as exc:
            raise SessionError(str(exc), PHASE_LOADING) from exc
        try:
            self.model = self._build(cls, init_seed)
            _adopt_reference_weights(self.model, reference_state)
        except Exception as exc:
            raise SessionError(
                f"{solution_path}: ModelNew(*get_init_inputs()) raised {type(exc).__name__}: {_line(exc)}",
                PHASE_INIT,
            ) from exc
        self.trial_seeds = list(trial_seeds)
        self.fresh_seed = fresh_seed
        self.timing_seed = timing_seed
        if not timing_later:
            self.take_timing_inputs(timed)
        return {}

    def take_timing_inputs(self, timed: dict[str, Any] | None = None) -> dict[str, Any]:
        """Timing inputs of this worker's own: a copy of the staged set ``timed``, else drawn from the seed."""
        if timed is not None:
            self.timing_inputs = [x.clone() if _is_tensor(x) else x for x in self._staged(timed)]
        else:
            self.timing_inputs = self._inputs(self.timing_seed)
        return {}

    def _staged(self, staged: dict[str, Any]) -> list[Any]:
        """Views of a staged input set (the region is opened once per candidate)."""
        region = staged.get("region") or {}
        if region.get("kind") == "cuda":
            handle = str(region.get("handle"))
            opened = self._opened.get(handle)
            if opened is None:
                opened = self._opened[handle] = exchange.OpenedRegion(handle, self.device)
            tensor = opened.tensor()
        elif region.get("kind") == "host" and self.host_staging is not None:
            tensor = self.host_staging
        else:
            raise SessionError("the staged inputs' region is not available", PHASE_CORRECTNESS)
        layout = exchange.check_layout(staged.get("layout"), int(tensor.numel()))
        return exchange.views(tensor, layout)

    def run_trial(self, index: int, staged: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run correctness trial ``index`` on the staged inputs (the reference checks them afterwards),
        or on inputs drawn here, cloned first so that this process can tell whether they changed."""
        if staged is not None:
            inputs = self._staged(staged)
            before = None
        else:
            inputs = self._inputs(self.trial_seeds[index])
            before = [x.clone() if _is_tensor(x) else x for x in inputs]
        try:
            outputs = as_output_list(self._forward(inputs))
            self.backend.synchronize(self.device)
        except Exception as exc:
            raise SessionError(
                f"forward raised {type(exc).__name__}: {_line(exc)}", PHASE_CORRECTNESS
            ) from exc
        return {
            "outputs": self._for_reference(outputs),
            "inputs_unchanged": None if before is None else _same(before, inputs),
        }

    def timed_output(self) -> dict[str, Any]:
        """The output of the last timed call (checked: timed runs must compute too)."""
        return {"outputs": self._for_reference(as_output_list(self.last_output))}

    def fresh_output(self, staged: dict[str, Any] | None = None) -> dict[str, Any]:
        """Overwrite the timing inputs in place with new values and run once more.

        Same tensors, new contents: a candidate that caches results by tensor identity is caught here.
        The previous output is poisoned first, so handing back the same tensor object fails too.
        """
        assert self.timing_inputs is not None
        self._poison_last_output()
        fresh = self._staged(staged) if staged is not None else self._inputs(self.fresh_seed)
        for dst, src in zip(self.timing_inputs, fresh, strict=True):
            if _is_tensor(dst):
                dst.copy_(src)
        try:
            outputs = as_output_list(self._forward(self.timing_inputs))
            self.backend.synchronize(self.device)
        except Exception as exc:
            raise SessionError(
                f"forward raised {type(exc).__name__}: {_line(exc)}", PHASE_CORRECTNESS
            ) from exc
        return {"outputs": self._for_reference(outputs)}

    def _for_reference(self, outputs: list[Any]) -> list[Any]:
        """Outputs as the reference will read them: CUDA tensors as IPC descriptions where the backend
        stages on the device (kept alive until the next reply), others as tensors or marker dicts."""
        plain = _plain(outputs, self.device)
        self._exported = []
        if self.backend.staging != "cuda" or not self.ipc_outputs:
            return plain
        described: list[Any] = []
        for out in plain:
            if not _is_tensor(out) or out.numel() == 0:
                described.append(out)
                continue
            for candidate in (out.contiguous(), out.clone()):
                try:
                    described.append(exchange.export_cuda_tensor(candidate))
                    self._exported.append(candidate)
                    break
                except exchange.ExchangeError:
                    continue
            else:
                described.append(out)  # not exportable (e.g. expandable segments): its bytes travel
        return described

    def time(
        self,
        repetitions: int,
        flush_cache: bool,
        lead_ms: float = 0.0,
        calibration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # A candidate that returns a cached tensor object (keyed by identity or by content) hands back
        # the poisoned tensor in this round, and the check of the last timed output fails.
        self._poison_last_output()
        try:
            return super().time(repetitions, flush_cache, lead_ms, calibration)
        except Exception as exc:
            raise SessionError(f"forward raised {type(exc).__name__}: {_line(exc)}", PHASE_SOLUTION) from exc

    def _poison_last_output(self) -> None:
        """Overwrite the previous call's outputs unless they share memory with inputs or weights."""
        if self.last_output is None:
            return
        keep = list(self.timing_inputs or [])
        if hasattr(self.model, "parameters"):
            with contextlib.suppress(Exception):
                keep += list(self.model.parameters()) + list(self.model.buffers())
        _poison(as_output_list(self.last_output), keep)


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


# --- tamper guard ---------------------------------------------------------------------------------

_MISSING = object()


class Guard:
    """The functions a candidate must not replace, recorded before it is imported.

    Catches the usual in-process cheats with a clear message: patching the clock (``time``), torch's
    functions and tensor methods, builtins, or the harness's own timing and checking code. Deeper
    tricks (ctypes, rewriting frames) are out of its reach; the supervisor's own clock bounds those.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str, Any, str, Any, Any]] = []  # label, namespace, name, value, code
        self._closed: list[tuple[str, Any, frozenset[str]]] = []  # namespaces that may not grow
        self._instances: list[tuple[str, Any]] = []  # objects whose attributes may not shadow methods

    @classmethod
    def capture(cls, *instances: Any) -> Guard:
        """Record the current state of torch, time, builtins, the harness and ``instances``."""
        import builtins

        import torch

        guard = cls()
        guard._add_module("time", time)
        guard._add_module("builtins", builtins)
        guard._add_module("torch", torch, public_only=True)
        for name in ("torch.nn.functional", "torch.testing", "torch.cuda"):
            module = sys.modules.get(name)
            if module is not None:
                guard._add_module(name, module, public_only=True)
        guard._add_npu(torch)
        guard._add_class("torch.Tensor", torch.Tensor)
        guard._add_class("torch._C.TensorBase", torch._C.TensorBase)
        from multiprocessing import connection

        for pipe_class in (connection._ConnectionBase, connection.Connection):  # the reply pipe
            guard._add_class(f"multiprocessing.connection.{pipe_class.__name__}", pipe_class)
        for name, module in list(sys.modules.items()):
            if (name == "harness" or name.startswith("harness.")) and isinstance(module, types.ModuleType):
                guard._add_module(name, module)
                for value in list(vars(module).values()):
                    if isinstance(value, type) and value.__module__ == name:
                        guard._add_class(f"{name}.{value.__qualname__}", value)
        for instance in instances:
            guard._instances.append((type(instance).__qualname__, instance))
        return guard

    def _add_npu(self, torch: Any) -> None:
        """``torch.npu`` (torch_npu's device module, also ``torch_npu.npu``) when torch_npu is loaded.

        The NPU backend times with its ``Event``, ``current_stream`` and ``synchronize``: a candidate that
        replaced one of them, a method of ``Event`` or ``Stream``, or ``torch.npu`` itself could fake its
        own times on an NPU run.
        """
        module = getattr(torch, "npu", None) or sys.modules.get("torch_npu.npu")
        if not isinstance(module, types.ModuleType):
            return
        if vars(torch).get("npu") is module:
            self._entries.append(("torch", vars(torch), "npu", module, None))
        self._add_module("torch.npu", module, public_only=True)
        for name in ("Event", "Stream"):
            cls = vars(module).get(name)
            if isinstance(cls, type):
                self._add_class(f"torch.npu.{name}", cls)

    def _add_module(self, label: str, module: types.ModuleType, public_only: bool = False) -> None:
        namespace = vars(module)
        for name, value in list(namespace.items()):
            if public_only and name.startswith("_"):
                continue
            if callable(value) and not isinstance(value, types.ModuleType):
                self._entries.append((label, namespace, name, value, getattr(value, "__code__", None)))

    def _add_class(self, label: str, cls: type) -> None:
        namespace = cls.__dict__
        for name, value in list(namespace.items()):
            self._entries.append((label, namespace, name, value, getattr(value, "__code__", None)))
        self._closed.append((label, cls, frozenset(namespace)))

    def violations(self) -> list[str]:
        """Names of recorded functions that were replaced, removed or shadowed since ``capture``."""
        found = []
        for label, namespace, name, value, code in self._entries:
            current = namespace.get(name, _MISSING)
            if current is not value or (code is not None and getattr(current, "__code__", None) is not code):
                found.append(f"{label}.{name}")
        for label, cls, names in self._closed:
            found += [f"{label}.{name}" for name in cls.__dict__.keys() - names]
        for label, instance in self._instances:
            own = getattr(instance, "__dict__", {})
            found += [f"{label}.{n}" for n in own if callable(getattr(type(instance), n, None))]
        return found


# --- serving requests -----------------------------------------------------------------------------


class _Transport:
    """How one worker exchanges large payloads: the reply buffer the supervisor attached, if any."""

    def __init__(self, writable: bool) -> None:
        self.writable = writable  # the candidate worker writes its replies; the reference only reads
        self.buffer: mmap.mmap | None = None
        self.staging: mmap.mmap | None = None

    def receive(self, conn: Any, blob: Any) -> Any:
        """What came with a request: raw reply bytes, a new shared buffer, or a reply in the buffer."""
        if blob == "bytes":
            return conn.recv_bytes()
        kind, size = blob[0], int(blob[1])
        if kind in ("fd", "stage_fd"):
            from multiprocessing import reduction

            fd = reduction.recv_handle(conn)
            try:
                if kind == "stage_fd":  # staged inputs: written by the reference, read by the candidate
                    self.staging = wire.map_shared(fd, size, writable=True)
                    return None
                if self.buffer is not None:
                    with contextlib.suppress(BufferError):
                        self.buffer.close()
                self.buffer = wire.map_shared(fd, size, self.writable)
            finally:
                os.close(fd)
            return None
        if self.buffer is None or not 0 <= size <= len(self.buffer):
            raise wire.WireError("a reply in a shared buffer that is not there")
        return memoryview(self.buffer)[:size]

    def send(self, conn: Any, reply: dict[str, Any]) -> None:
        """Send ``reply``: into the shared buffer (and a small envelope) when it carries large tensors."""
        if self.writable and self.buffer is not None and wire.tensor_bytes(reply) >= wire.SHARED_MIN_BYTES:
            try:
                length = wire.encode_into(reply, self.buffer)
            except wire.TooLarge:
                pass
            else:
                conn.send_bytes(wire.encode({"seq": reply["seq"], "shared": length}))
                return
        conn.send_bytes(wire.encode(reply))


def serve(conn: Any, session: _Session, guard: Guard | None = None) -> None:
    """Answer requests until the supervisor closes the connection or asks to stop.

    With a ``guard`` (candidate workers) every reply is preceded by a tamper check, so a candidate
    that patched the clock or the harness ends with an error naming what it replaced.
    """
    check = guard.violations if guard is not None else None
    transport = _Transport(writable=guard is not None)
    while True:
        try:
            seq, method, kwargs, blob = conn.recv()
            if blob:
                received = transport.receive(conn, blob)
                if received is not None:
                    kwargs["forward"] = received
        except (EOFError, OSError):
            return
        except wire.WireError as exc:
            conn.send_bytes(wire.encode({"ok": False, "seq": seq, "error": _error_dict(exc, None)}))
            continue
        if method == "stop":
            conn.send_bytes(wire.encode({"ok": True, "value": {}, "seq": seq}))
            return
        if method == "attach_buffer":
            reply = {"ok": True, "value": {}}
        elif method == "attach_staging":
            session.attach_staging(transport.staging)
            reply = {"ok": True, "value": {}}
        else:
            reply = dispatch(session, method, kwargs)
        forwarded = kwargs.pop("forward", None)
        if isinstance(forwarded, memoryview):
            with contextlib.suppress(BufferError):
                forwarded.release()
        if check is not None:
            replaced = check()
            if replaced:
                reply = _tampered(replaced)
        reply["seq"] = seq
        try:
            transport.send(conn, reply)
        except (BrokenPipeError, ConnectionError):
            return
        except Exception as exc:  # noqa: BLE001 - an unsendable value is the worker's error, not a crash
            conn.send_bytes(wire.encode({"ok": False, "seq": seq, "error": _error_dict(exc, None)}))


def _tampered(replaced: list[str]) -> dict[str, Any]:
    shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
    message = f"the candidate replaced {shown}; a solution may not patch torch, time, builtins or the harness"
    return {"ok": False, "error": {"type": "TamperError", "message": message, "phase": None}}


def dispatch(session: _Session, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call one session method; failures become an error reply with type, message and phase."""
    handler: Callable[..., dict[str, Any]] | None = getattr(session, method, None)
    if handler is None or method.startswith("_"):
        return {
            "ok": False,
            "error": {"type": "ProtocolError", "message": f"no method {method}", "phase": None},
        }
    try:
        return {"ok": True, "value": handler(**kwargs)}
    except SessionError as exc:
        return {"ok": False, "error": {"type": "SessionError", "message": str(exc), "phase": exc.phase}}
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which decides the status
        return {"ok": False, "error": _error_dict(exc, None)}


def _error_dict(exc: BaseException, phase: str | None) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {_line(exc)}",
        "phase": phase,
        "traceback": traceback.format_exc(limit=8)[-4000:],
    }


# --- process set-up (Linux) -----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; False where the call is not available or fails."""
    try:
        return int(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper limit on 64-bit


def _fixed_allocator() -> None:
    """Give every worker the same, static malloc policy: blocks up to 32 MiB from the heap, no trimming.

    glibc adapts its mmap and trim thresholds to what a process freed before: the long-lived
    reference worker had raised them (its large outputs reuse heap memory), while a fresh candidate
    worker starts at 128 KiB, so each of its multi-megabyte outputs was a new mapping, page-faulted
    in on every call. That made the same model time up to 2x slower as a candidate (A/A runs), an
    allocator artefact rather than a kernel's speed. Fixed thresholds (setting them turns the
    adaptation off) make both sides allocate alike from the first call. ``HARNESS_MALLOC=default``
    keeps glibc's behaviour (for comparison); elsewhere than glibc this does nothing.
    """
    if os.environ.get("HARNESS_MALLOC") == "default" or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = _libc()
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _worker_process_setup(cpus: list[int] | None = None) -> None:
    """What every worker does first: ignore Ctrl-C, write no bytecode, drop inherited fds, pin CPUs.

    Ctrl-C is the supervisor's to handle. Workers write no ``__pycache__`` beside case and solution
    files (the file watch would see them as changes). The fork server's liveness pipe and the
    resource tracker's pipe are closed so that neither outlives the supervisor because a worker
    still holds it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.dont_write_bytecode = True
    _fixed_allocator()
    _pin(cpus)
    with contextlib.suppress(Exception):
        from multiprocessing import forkserver, resource_tracker

        fds = (forkserver._forkserver._forkserver_alive_fd, resource_tracker._resource_tracker._fd)  # type: ignore[attr-defined]
        for fd in fds:
            if isinstance(fd, int):
                with contextlib.suppress(OSError):
                    os.close(fd)
        forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]
        resource_tracker._resource_tracker._fd = None  # type: ignore[attr-defined]
        resource_tracker._resource_tracker._pid = None  # type: ignore[attr-defined]


def _pin(cpus: list[int] | None) -> None:
    """Run on ``cpus`` only (the reference and the candidate of a device get the same set).

    Host speed differs between CPU cores (interrupt routing, a busy SMT sibling, a virtual CPU whose
    host thread is shared), and on a GPU the host's launch time reaches the samples of calls whose
    launches the lead does not cover: two processes on different cores read an A/A pair up to 2 %
    apart (docs/measurement.md). On the same cores, with the other side stopped while one is timed,
    both get the same host.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, cpus)
        import torch

        torch.set_num_threads(len(cpus))


def _supervisor_watch(supervisor_pid: int) -> int | None:
    """A file descriptor that becomes readable when the supervisor exits (a pidfd), or None."""
    try:
        return os.pidfd_open(supervisor_pid)
    except (AttributeError, OSError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_with_supervisor(supervisor_pid: int) -> None:
    """End this process as soon as the supervisor is gone (a thread waiting on its pidfd)."""

    def watch() -> None:
        fd = _supervisor_watch(supervisor_pid)
        while True:
            if fd is not None:
                select.select([fd], [], [])
                os._exit(0)
            if not _alive(supervisor_pid):
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, name="harness-supervisor-watch", daemon=True).start()


# Landlock (Linux >= 5.13): forbid writes outside the scratch folder for the candidate's whole tree.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE = 1 << 1
_FS_WRITE_RIGHTS_V1 = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))  # write, remove, make_*
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_TCP = (1 << 0) | (1 << 1)  # ABI 4: bind and connect
_SCOPE_ALL = (1 << 0) | (1 << 1)  # ABI 6: abstract unix sockets and signals
# Device files a candidate may write: null and friends, and accelerators (CUDA, Ascend, ROCm, DRM).
_WRITABLE_DEVICES = ("null", "zero", "full", "random", "urandom")
_DEVICE_PREFIXES = ("nvidia", "davinci", "devmm_svm", "hisi_hdc", "kfd", "dri", "accel")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    try:
        abi = int(_libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return 0
    return max(abi, 0)


def apply_landlock(scratch: Path) -> dict[str, Any]:
    """Restrict this process and every process it starts later: no writes outside ``scratch``.

    Also, where the kernel supports it: no TCP, no signals or abstract-socket connections to
    processes outside the sandbox, and (always with Landlock) no ptrace of them. Returns what was
    enforced: ``{"landlock": abi}`` or ``{"landlock": None, "reason": why not}``.
    """
    abi = landlock_abi()
    if abi < 1:
        return {"landlock": None, "reason": "Landlock is not available in this kernel"}
    fs = _FS_WRITE_RIGHTS_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = int(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        return {
            "landlock": None,
            "reason": f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}",
        }
    try:
        file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
        for path, rights in _writable_paths(scratch, fs, file_rights):
            _allow(ruleset, path, rights)
        if not prctl(_PR_SET_NO_NEW_PRIVS, 1):
            return {"landlock": None, "reason": "prctl(PR_SET_NO_NEW_PRIVS) failed"}
        if int(libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)) != 0:
            return {
                "landlock": None,
                "reason": f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}",
            }
    finally:
        os.close(ruleset)
    return {"landlock": abi}


def _writable_paths(scratch: Path, dir_rights: int, file_rights: int) -> list[tuple[str, int]]:
    """The scratch folder and shared memory (everything), and device files a candidate may write."""
    paths = [(str(scratch), dir_rights)]
    if os.path.isdir("/dev/shm"):
        paths.append(("/dev/shm", dir_rights))
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/dev")):
            if name in _WRITABLE_DEVICES or name.startswith(_DEVICE_PREFIXES):
                paths.append((os.path.join("/dev", name), file_rights))
    return paths


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        rule = _PathBeneathAttr(rights, fd)
        if int(
            _libc().syscall(
                _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
        ):
            # A file rule cannot carry directory rights: retry with the file rights alone.
            rule = _PathBeneathAttr(rights & (_FS_WRITE_FILE | _FS_TRUNCATE), fd)
            _libc().syscall(
                _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
    finally:
        os.close(fd)


# --- the process tree -----------------------------------------------------------------------------


def process_parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process visible in /proc."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 2:
            table[int(name)] = (int(fields[1]), fields[0].decode("ascii", "replace"))
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Living (non-zombie) descendants of ``root``, parents before children."""
    table = process_parents() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, state) in table.items():
        if state not in ("Z", "X"):
            children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _kill_subtree(root: int, deadline_s: float = 5.0) -> set[int]:
    """SIGKILL every descendant of ``root`` (this process, a subreaper) until none is left; reaps them."""
    killed: set[int] = set()
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        _reap_all()
        found = descendants(root)
        if not found:
            break
        signal_all(found, signal.SIGKILL)
        killed.update(found)
        time.sleep(0.001)
    _reap_all()
    return killed


def _reap_all() -> list[tuple[int, int]]:
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped.append((pid, status))
    return reaped


# --- process entry points -------------------------------------------------------------------------


def reference_main(
    conn: Any, backend_name: str, device: str, supervisor_pid: int, cpus: list[int] | None = None
) -> None:
    """Entry point of the reference worker (trusted; reused across cases)."""
    _worker_process_setup(cpus)
    with contextlib.suppress(OSError):
        os.setsid()  # Ctrl-C in a terminal reaches the supervisor only
    with contextlib.suppress(OSError):
        os.dup2(2, 1)  # a case that prints must not corrupt `harness eval --json` on stdout
    prctl(_PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<pid>/mem from same-user processes
    # Killed with its parent (the fork server, which ends with the supervisor) even while stopped
    # (the supervisor stops it while a candidate is timed): a stopped process cannot run its watcher.
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _exit_with_supervisor(supervisor_pid)
    session = ReferenceSession(backend_name, device)
    session.backend.prepare_process(device)
    serve(conn, session)
    with contextlib.suppress(Exception):
        conn.close()
    os._exit(0)


class _Tail:
    """The last ``limit`` bytes of a stream, and how many bytes it carried in all."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.limit + (1 << 16):
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return bytes(self.data[-self.limit :] if self.limit else b"").decode("utf-8", errors="replace")


def keeper_main(
    conn: Any,
    status: Any,
    backend_name: str,
    device: str,
    scratch: str,
    token: str,
    supervisor_pid: int,
    output_limit: int,
    sandbox: bool,
    cpus: list[int] | None = None,
) -> None:
    """Entry point of a candidate's keeper: the trusted parent of one candidate worker.

    It makes itself a child subreaper (whatever the candidate starts, double-forked or not, stays
    in its subtree), confines itself and so the candidate to Landlock, starts the candidate worker
    with stdout/stderr on pipes, keeps the tail of both, and when the worker exits, the supervisor
    asks (SIGTERM) or the supervisor dies, kills the whole subtree. Then it reports the worker's exit
    status, the output tails and what it had to kill on ``status`` and exits.
    """
    try:
        _keeper(conn, status, backend_name, device, scratch, token, supervisor_pid, output_limit, sandbox, cpus)
    finally:
        os._exit(0)


def _keeper(
    conn: Any,
    status: Any,
    backend_name: str,
    device: str,
    scratch: str,
    token: str,
    supervisor_pid: int,
    output_limit: int,
    sandbox: bool,
    cpus: list[int] | None,
) -> None:
    _worker_process_setup(cpus)  # the candidate worker forked below inherits the CPU set
    with contextlib.suppress(OSError):
        os.setsid()
    reaper = prctl(_PR_SET_CHILD_SUBREAPER, 1)
    prctl(_PR_SET_DUMPABLE, 0)  # without Landlock, a same-user candidate could otherwise ptrace it
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    box_r, box_w = os.pipe()
    wake_r, wake_w = os.pipe()
    for fd in (out_r, err_r, box_r, wake_r, wake_w):
        os.set_blocking(fd, False)
    for fd in (out_r, err_r):
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups when a candidate floods
    # Handlers first: a SIGTERM that came before them would kill the keeper and orphan the subtree.
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    keeper = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            status.close()
            for fd in (out_r, err_r, box_r, wake_r, wake_w):
                os.close(fd)
            pipes = {"stdout": out_w, "stderr": err_w, "sandbox": box_w}
            _candidate_main(conn, backend_name, device, Path(scratch), token, keeper, pipes, sandbox)
            code = 0
        except BaseException:  # noqa: BLE001 - this process must never return into the keeper's code
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            os._exit(code)
    conn.close()
    for fd in (out_w, err_w, box_w):
        os.close(fd)
    _send(status, {"event": "started", "pid": pid, "subreaper": reaper})
    tails = {out_r: _Tail(output_limit), err_r: _Tail(output_limit)}
    open_fds = [out_r, err_r]
    box = _Tail(1 << 16)
    box_open = [box_r]
    supervisor_fd = _supervisor_watch(supervisor_pid)
    exit_status: int | None = None
    reason = None
    while reason is None:
        watched = [wake_r, *open_fds, *box_open] + ([supervisor_fd] if supervisor_fd is not None else [])
        try:
            ready, _, _ = select.select(watched, [], [], 1.0)
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    if bytes([signal.SIGTERM]) in os.read(wake_r, 512):
                        reason = "stopped"
            elif fd == supervisor_fd:
                reason = "supervisor gone"
            elif fd == box_r:
                _drain(fd, box, box_open, budget=1 << 16)
                if not box_open:
                    _send(status, {"event": "sandbox", "sandbox": _sandbox_report(box.text())})
            else:
                _drain(fd, tails[fd], open_fds, budget=64 << 20)
        for child, child_status in _reap_all():
            if child == pid:
                exit_status = child_status
                reason = reason or "exited"
        if supervisor_fd is None and not _alive(supervisor_pid):
            reason = "supervisor gone"
    killed = _kill_subtree(keeper)
    killed.discard(pid)
    deadline = time.monotonic() + 1.0
    while open_fds and time.monotonic() < deadline:
        ready, _, _ = select.select(open_fds, [], [], 0.1)
        for fd in ready:
            _drain(fd, tails[fd], open_fds, budget=64 << 20)
    report: dict[str, Any] = {
        "event": "finished",
        "reason": reason,
        "exit_code": None,
        "signal": None,
        "stdout": tails[out_r].text(),
        "stderr": tails[err_r].text(),
        "truncated": any(t.total > t.limit for t in tails.values()),
        "output_bytes": sum(t.total for t in tails.values()),
        "leftovers": len(killed),
    }
    if exit_status is not None and reason == "exited":
        if os.WIFSIGNALED(exit_status):
            signum = os.WTERMSIG(exit_status)
            report["signal"] = _signal_name(signum)
            report["exit_code"] = -signum
        else:
            report["exit_code"] = os.WEXITSTATUS(exit_status)
    _send(status, report)


def _send(status: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        status.send_bytes(json.dumps(message).encode())


def _sandbox_report(text: str) -> dict[str, Any]:
    """What the worker said about its sandbox, written before any candidate code ran in it."""
    try:
        report = json.loads(text)
    except ValueError:
        return {"landlock": None, "reason": "the worker did not report its sandbox"}
    return report if isinstance(report, dict) else {"landlock": None, "reason": "malformed sandbox report"}


def _drain(fd: int, tail: _Tail, open_fds: list[int], budget: int) -> None:
    """Read what ``fd`` holds (up to ``budget`` bytes) into ``tail``; forget ``fd`` at end of file."""
    taken = 0
    while taken < budget:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            open_fds.remove(fd)
            os.close(fd)
            return
        tail.add(chunk)
        taken += len(chunk)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _candidate_main(
    conn: Any,
    backend_name: str,
    device: str,
    scratch: Path,
    token: str,
    keeper: int,
    pipes: dict[str, int],
    sandbox: bool,
) -> None:
    """The candidate worker (forked by its keeper): set up, sandbox, record the guard, then serve.

    Everything before `serve` runs before the candidate's file is imported, so what it writes on the
    sandbox pipe (then closed) can be believed by the keeper.
    """
    os.dup2(pipes["stdout"], 1)
    os.dup2(pipes["stderr"], 2)
    os.close(pipes["stdout"])
    os.close(pipes["stderr"])
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != keeper:
        os._exit(70)
    prctl(_PR_SET_DUMPABLE, 1)  # only the keeper must be safe from ptrace
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    _drop_secrets(os.environ)
    os.environ[TOKEN_ENV] = token
    _confine_to_scratch(scratch)
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    session = CandidateSession(backend_name, device)
    session.ipc_outputs = True
    session.backend.prepare_process(device)
    _warm_up_cpu()
    box: dict[str, Any] = {"landlock": None, "reason": "sandbox turned off"}
    if sandbox:
        box = apply_landlock(scratch)
    os.write(pipes["sandbox"], json.dumps(box).encode())
    os.close(pipes["sandbox"])
    guard = Guard.capture(session, session.backend)
    serve(conn, session, guard)
    with contextlib.suppress(Exception):
        conn.close()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()


_SECRET_MARKS = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY",
)  # fmt: skip


def _drop_secrets(environ: Any) -> None:
    """Remove variables that look like credentials: a candidate has no use for them."""
    for name in list(environ):
        upper = name.upper()
        if any(mark in upper for mark in _SECRET_MARKS) or upper.startswith(("AWS_", "GITHUB_", "GH_")):
            del environ[name]


def _warm_up_cpu() -> None:
    """Start torch's CPU thread pool and random generator before the candidate arrives.

    A long-lived process (the reference worker, or everything with ``--isolation none``) has them
    running already; a fresh worker would otherwise pay for them in its first correctness trial.
    """
    import torch

    with contextlib.suppress(Exception):
        torch.randn(1 << 17).mul_(2).sum()


def _confine_to_scratch(scratch: Path) -> None:
    """Run in the scratch folder; temporary files, caches and HOME point into it; no core files."""
    scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(scratch)
    for env in ("TMPDIR", "TEMP", "TMP", "HOME"):
        os.environ[env] = str(scratch)
    caches = {
        "XDG_CACHE_HOME": ".cache",
        "TRITON_CACHE_DIR": ".cache/triton",
        "TORCHINDUCTOR_CACHE_DIR": ".cache/inductor",
        "TORCH_EXTENSIONS_DIR": ".cache/torch_extensions",
        "CUDA_CACHE_PATH": ".cache/nv",
        "NUMBA_CACHE_DIR": ".cache/numba",
    }
    for env, sub in caches.items():
        os.environ[env] = str(scratch / sub)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
