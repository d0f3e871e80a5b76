"""The reference session (trusted): loads the case, draws every input set once, computes the expected
outputs, stages inputs for the candidate, compares the candidate's outputs, and is timed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from harness.errors import CaseLoadError
from harness.results import PHASE_CORRECTNESS, PHASE_LOADING
from harness.sandbox import exchange, wire
from harness.sandbox.correctness import as_output_list, compare_outputs, output_fingerprint
from harness.sandbox.protocol import BaselineReply, PrepareReply
from harness.sandbox.session import SessionError, _detached, _is_tensor, _line, _model_tensors, _nbytes, _Session

# On a device the reference keeps every input set of a case only while they fit in this many bytes
# together; larger sets are drawn again from their seeds (a few milliseconds per gigabyte on a GPU).
_KEEP_INPUT_BYTES = 2 << 30
# A staging region larger than this is freed at the end of its case (a smaller one is kept).
_KEEP_REGION_BYTES = 1 << 30


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
        # Regions outgrown by a later shape of a case: its candidate may still have them open, and an
        # exported allocation freed before its importer closes it is undefined behaviour in CUDA.
        # They are freed when the next case starts (its candidate is gone by then).
        self._retired: list[exchange.CudaRegion] = []
        self.shape = 0

    def prepare(
        self,
        case: dict[str, Any],
        init_seed: int,
        trial_seeds: list[int],
        timing_seed: int,
        fresh_seed: int,
        shape: int = 0,
    ) -> dict[str, Any]:
        """Load the case at shape ``shape``, build ``Model``, draw every input set once and compute its
        expected outputs.

        The input sets are kept: the candidate runs on staged copies of them (`stage`) instead of
        drawing them again. Anything the case file does wrong becomes a SessionError naming the file
        and the step. A case of several shapes is prepared once per shape, each dropping the last
        one's tensors, so the peak memory stays one shape's.
        """
        # The previous case's (or shape's) tensors go first: the peak memory is one shape's. A later shape
        # keeps the staging region, which the same candidate has open.
        self.finish(same_case=shape > 0)
        self.shape = shape
        self.counter += 1
        path = case.get("path", "?")
        step = "loading the case"
        try:
            self.loaded = self._load_case(case, f"ref{self.counter}", shape)
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
        return PrepareReply(
            atol=atol,
            rtol=rtol,
            flops=flops,
            input_bytes=_nbytes(self.timing_inputs or []),
            output_bytes=_nbytes(self.expected["timed"]),
            outputs=len(self.expected["timed"]),
            staging=staging,
            stage_bytes=exchange.layout_bytes(layout) if layout is not None else 0,
            # for the speed of light (harness.analysis.speed_of_light): weights are read on every call too
            param_bytes=_nbytes(_model_tensors(self.model)),
            dtypes=tuple(
                sorted({str(t.dtype) for t in (self.timing_inputs or []) + self.expected["timed"] if _is_tensor(t)})
            ),
            shapes=self.loaded.shape_count,
            sizes=self.loaded.shape_sizes(),
        ).to_json()

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
        return BaselineReply(
            estimate_ms=warm["estimate_ms"],
            host_ms=max(first["host_ms"], warm["host_ms"]),
            lead_ms=lead,
            calibration=calibration,
            series=series,
            warmup_calls=config.min_warmup + max(0, extra),
        ).to_json()

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
                    if self.shape > 0:
                        self._retired.append(self._cuda_region)  # this case's candidate may hold it
                    else:
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
        (decoded here with `harness.sandbox.wire`, never unpickled) or, in-process, the reply's value. Outputs
        the candidate exported as CUDA IPC handles are copied into this process first. When the
        candidate ran on staged inputs of ``key``, the verdict also says whether they are unchanged.
        """
        assert self.loaded is not None
        if isinstance(forward, (bytes, bytearray, memoryview)):
            # Shared with the candidate: tensors are read where they lie, each chunk copied before
            # it is checked (harness.sandbox.correctness), so later writes by the candidate change nothing.
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

        from harness.backends import peaks as device_peaks

        env = self.backend.environment(self.device)
        env["torch"] = torch.__version__
        try:
            import triton

            env["triton"] = triton.__version__
        except Exception:
            env["triton"] = None
        peaks = device_peaks.peaks_for(env)  # measured here for a CPU, in the trusted process
        env["peaks"] = peaks.to_json() if peaks else None
        return env

    def finish(self, same_case: bool = False) -> dict[str, Any]:
        """Drop this case's tensors so the worker can be reused.

        On a device the freed memory goes back to the driver (the caching allocator would keep it,
        and the next case's candidate, another process, could not have it), and a staging region
        above `_KEEP_REGION_BYTES` is freed; a smaller one is kept for the next case. With
        ``same_case`` (the next shape of the case follows, for the same candidate) every staging
        region stays: the candidate may have it open.
        """
        self.expected = {}
        self.inputs = {}
        self.seeds = {}
        self.layouts = {}
        self.staged_key = None
        self.model = self.timing_inputs = self.last_output = None
        if not same_case:
            for region in self._retired:
                region.close()
            self._retired = []
            if self._cuda_region is not None and self._cuda_region.nbytes > _KEEP_REGION_BYTES:
                self._cuda_region.close()
                self._cuda_region = None
        if self.device != "cpu":
            self.backend.release_memory(self.device)
        return {}


