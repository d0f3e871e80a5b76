"""The candidate session: imports the untrusted solution, runs it on the inputs the reference staged,
reports what it returned (CUDA outputs as IPC descriptions), and is timed."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from harness.results import PHASE_CORRECTNESS, PHASE_INIT, PHASE_LOADING, PHASE_SOLUTION
from harness.sandbox import exchange
from harness.sandbox.correctness import as_output_list
from harness.sandbox.session import (
    SessionError,
    _adopt_reference_weights,
    _is_tensor,
    _line,
    _plain,
    _poison,
    _same,
    _same_values,
    _Session,
)
from harness.suite.cases import load_solution_class


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
        self.solution_path = ""
        self.solution_class: type | None = None
        self.init_seed = 0
        self.built_with: list[Any] = []  # the init inputs ModelNew was built from (use_shape compares)

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
        shape: int = 0,
    ) -> dict[str, Any]:
        """Import the solution and build ``ModelNew`` at shape ``shape``; timing inputs are copied from
        the staged set ``timed`` (or drawn from the seed where the reference could not stage them), or,
        with ``timing_later``, taken by a later `take_timing_inputs` (the load then overlaps the
        reference's prepare)."""
        try:
            self.loaded = self._load_case(case, "cand", shape)
            cls = load_solution_class(Path(solution_path))
        except Exception as exc:
            raise SessionError(str(exc), PHASE_LOADING) from exc
        self.solution_path, self.solution_class, self.init_seed = solution_path, cls, init_seed
        self._build_candidate()
        self._set_seeds(trial_seeds, timing_seed, fresh_seed)
        if not timing_later:
            self.take_timing_inputs(timed)
        return {}

    def use_shape(
        self,
        shape: int,
        trial_seeds: list[int],
        timing_seed: int,
        fresh_seed: int,
        timed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Go on to shape ``shape`` of the case with the same ``ModelNew``, built again only where the
        shape's ``get_init_inputs()`` differ from the ones it was built with (a model that serves many
        shapes is what a real kernel is; one whose constructor takes a size must be made for it).

        Says whether it was rebuilt. The last shape's timing inputs and output are let go first.
        """
        assert self.loaded is not None and self.solution_class is not None
        try:
            self.loaded.select_shape(shape)
            init = self._init_inputs(self.init_seed)
        except Exception as exc:
            raise SessionError(f"{self.loaded.case.path}: shape {shape + 1}: {_line(exc)}", PHASE_LOADING) from exc
        self.timing_inputs = self.last_output = None
        rebuilt = not _same_values(init, self.built_with)
        if rebuilt:
            self.model = None  # the old model's memory goes before the new one is made
            self._build_candidate()
        self._set_seeds(trial_seeds, timing_seed, fresh_seed)
        self.take_timing_inputs(timed)
        return {"rebuilt": rebuilt}

    def _build_candidate(self) -> None:
        """``ModelNew(*get_init_inputs())`` at the current shape, with the reference's weights where
        its parameters are laid out the same way."""
        assert self.loaded is not None and self.solution_class is not None
        try:
            reference_state = self._build(self.loaded.model_class, self.init_seed).state_dict()
            self.built_with = self._init_inputs(self.init_seed)
        except Exception as exc:
            raise SessionError(
                f"{self.loaded.case.path}: Model(*get_init_inputs()) raised {type(exc).__name__}: {_line(exc)}",
                PHASE_LOADING,
            ) from exc
        try:
            self.model = self._build(self.solution_class, self.init_seed)
            _adopt_reference_weights(self.model, reference_state)
        except Exception as exc:
            raise SessionError(
                f"{self.solution_path}: ModelNew(*get_init_inputs()) raised {type(exc).__name__}: {_line(exc)}",
                PHASE_INIT,
            ) from exc

    def _set_seeds(self, trial_seeds: list[int], timing_seed: int, fresh_seed: int) -> None:
        self.trial_seeds = list(trial_seeds)
        self.fresh_seed = fresh_seed
        self.timing_seed = timing_seed

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
                # A new region (a later shape outgrew the last one): the reference stages only into
                # its newest, so older mappings are closed (the reference frees them only later).
                for stale in self._opened.values():
                    stale.close()
                self._opened = {}
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


