"""What runs inside a worker process: the reference session (trusted) and the candidate session.

A worker serves requests ``(method, kwargs)`` from the supervisor and answers with `harness.wire`
bytes. The reference worker only ever imports suite files, so it can be reused across cases; a
candidate worker imports one untrusted file and is discarded after its case.

The same session classes also run in-process (``--isolation none``) for debugging and for
measuring what isolation costs.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import wire
from harness.cases import Case, LoadedCase, load_case, load_solution_class
from harness.correctness import as_output_list, compare_outputs

TOKEN_ENV = "HARNESS_EVAL_TOKEN"  # inherited by everything a candidate starts; used to find leftovers

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
    """State shared by both roles: the loaded case, the device and the inputs for each seed."""

    def __init__(self, backend_name: str, device: str) -> None:
        from harness.backends import get_backend

        self.backend = get_backend(backend_name)
        self.device = device
        self.loaded: LoadedCase | None = None
        self.model: Any = None
        self.timing_inputs: list[Any] | None = None
        self.last_output: Any = None

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

    def warmup(self, calls: int) -> dict[str, Any]:
        """Run untimed calls on the timing inputs; returns the median of a few timed estimates."""
        assert self.timing_inputs is not None
        inputs = self.timing_inputs
        for _ in range(calls):
            self._forward(inputs)
        self.backend.synchronize(self.device)
        estimate = self.backend.measure(lambda: self._forward(inputs), 3, self.device, False)
        return {"estimate_ms": sorted(estimate)[1]}

    def time(self, repetitions: int, flush_cache: bool) -> dict[str, Any]:
        """Per-call milliseconds for ``repetitions`` calls on the timing inputs."""
        assert self.timing_inputs is not None
        inputs = self.timing_inputs
        result: list[Any] = [None]

        def call() -> None:
            result[0] = self._forward(inputs)

        samples = self.backend.measure(call, repetitions, self.device, flush_cache)
        self.last_output = result[0]
        return {"samples_ms": samples}


class ReferenceSession(_Session):
    """Trusted: computes reference outputs, compares candidates' outputs, times the reference."""

    def __init__(self, backend_name: str, device: str) -> None:
        super().__init__(backend_name, device)
        self.expected: dict[str, list[Any]] = {}
        self.counter = 0

    def prepare(
        self, case: dict[str, Any], init_seed: int, trial_seeds: list[int], timing_seed: int, fresh_seed: int
    ) -> dict[str, Any]:
        self.counter += 1
        self.loaded = self._load_case(case, f"ref{self.counter}")
        self.model = self._build(self.loaded.model_class, init_seed)
        self.expected = {}
        for i, seed in enumerate(trial_seeds):
            self.expected[str(i)] = _detached(as_output_list(self._forward(self._inputs(seed))))
        self.timing_inputs = self._inputs(timing_seed)
        self.expected["timed"] = _detached(as_output_list(self._forward(self.timing_inputs)))
        self.expected["fresh"] = _detached(as_output_list(self._forward(self._inputs(fresh_seed))))
        self.backend.synchronize(self.device)
        return {
            "atol": self.loaded.atol,
            "rtol": self.loaded.rtol,
            "flops": self.loaded.flops(),
            "input_bytes": _nbytes(self.timing_inputs),
            "output_bytes": _nbytes(self.expected["timed"]),
        }

    def compare(self, key: str, outputs: list[Any]) -> dict[str, Any]:
        assert self.loaded is not None
        result = compare_outputs(self.expected[key], outputs, self.loaded.atol, self.loaded.rtol)
        return asdict(result)

    def finish(self) -> dict[str, Any]:
        """Drop this case's tensors so the worker can be reused."""
        self.expected = {}
        self.model = self.timing_inputs = self.last_output = None
        return {}


class CandidateSession(_Session):
    """Untrusted side: imports the candidate, runs it, and reports what it returned."""

    def __init__(self, backend_name: str, device: str) -> None:
        super().__init__(backend_name, device)
        self.trial_seeds: list[int] = []
        self.fresh_seed = 0

    def load(
        self,
        case: dict[str, Any],
        solution_path: str,
        init_seed: int,
        trial_seeds: list[int],
        timing_seed: int,
        fresh_seed: int,
    ) -> dict[str, Any]:
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
        self.timing_inputs = self._inputs(timing_seed)
        return {}

    def run_trial(self, index: int) -> dict[str, Any]:
        inputs = self._inputs(self.trial_seeds[index])
        before = [x.clone() if _is_tensor(x) else x for x in inputs]
        try:
            outputs = as_output_list(self._forward(inputs))
            self.backend.synchronize(self.device)
        except Exception as exc:
            raise SessionError(f"forward raised {type(exc).__name__}: {_line(exc)}", PHASE_CORRECTNESS) from exc
        return {"outputs": _plain(outputs), "inputs_unchanged": _same(before, inputs)}

    def timed_output(self) -> dict[str, Any]:
        """The output of the last timed call (checked: timed runs must compute too)."""
        return {"outputs": _plain(as_output_list(self.last_output))}

    def fresh_output(self) -> dict[str, Any]:
        """Overwrite the timing inputs in place with new values and run once more.

        Same tensors, new contents: a candidate that caches results by tensor identity is caught here.
        """
        assert self.timing_inputs is not None
        fresh = self._inputs(self.fresh_seed)
        for dst, src in zip(self.timing_inputs, fresh, strict=True):
            if _is_tensor(dst):
                dst.copy_(src)
        outputs = as_output_list(self._forward(self.timing_inputs))
        self.backend.synchronize(self.device)
        return {"outputs": _plain(outputs)}

    def time(self, repetitions: int, flush_cache: bool) -> dict[str, Any]:
        try:
            return super().time(repetitions, flush_cache)
        except Exception as exc:
            raise SessionError(f"forward raised {type(exc).__name__}: {_line(exc)}", PHASE_SOLUTION) from exc


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


def _plain(outputs: list[Any]) -> list[Any]:
    """Outputs as plain tensors for the wire; anything else is reported by its type name."""
    import torch

    plain = []
    for o in outputs:
        if type(o) is torch.Tensor:
            plain.append(o)
        else:
            plain.append({"not_a_tensor": type(o).__name__})
    return plain


def _same(before: list[Any], after: list[Any]) -> bool:
    import torch

    for b, a in zip(before, after, strict=True):
        if _is_tensor(b) and not (
            b.shape == a.shape and b.dtype == a.dtype and torch.equal(b.nan_to_num(), a.nan_to_num())
        ):
            return False
    return True


def _nbytes(tensors: list[Any]) -> int:
    return sum(int(t.numel() * t.element_size()) for t in tensors if _is_tensor(t))


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


# --- process side ---------------------------------------------------------------------------------


def serve(conn: Any, session: _Session) -> None:
    """Answer requests until the supervisor closes the connection or asks to stop."""
    while True:
        try:
            method, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        if method == "stop":
            conn.send_bytes(wire.encode({"ok": True, "value": {}}))
            return
        conn.send_bytes(wire.encode(dispatch(session, method, kwargs)))


def dispatch(session: _Session, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call one session method; failures become an error reply with type, message and phase."""
    handler: Callable[..., dict[str, Any]] | None = getattr(session, method, None)
    if handler is None or method.startswith("_"):
        return {"ok": False, "error": {"type": "ProtocolError", "message": f"no method {method}", "phase": None}}
    try:
        return {"ok": True, "value": handler(**kwargs)}
    except SessionError as exc:
        return {"ok": False, "error": {"type": "SessionError", "message": str(exc), "phase": exc.phase}}
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which decides the status
        return {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "message": f"{type(exc).__name__}: {_line(exc)}",
                "phase": None,
                "traceback": traceback.format_exc(limit=8)[-4000:],
            },
        }


def worker_main(conn: Any, role: str, backend_name: str, device: str, scratch: str | None, token: str) -> None:
    """Entry point of a worker process (started by the supervisor)."""
    if role == "candidate":
        os.setsid()  # its own process group: the supervisor kills the whole group on timeout
        os.environ[TOKEN_ENV] = token
        assert scratch is not None
        _confine_to_scratch(Path(scratch))
    session: _Session = (
        ReferenceSession(backend_name, device) if role == "reference" else CandidateSession(backend_name, device)
    )
    session.backend.prepare_process(device)
    serve(conn, session)
    with contextlib.suppress(Exception):
        conn.close()
    sys.stdout.flush()
    os._exit(0)


def _confine_to_scratch(scratch: Path) -> None:
    """Run in the scratch folder, send stdout/stderr to bounded files there, cap file sizes."""
    scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(scratch)
    for env in ("TMPDIR", "TEMP", "TMP"):
        os.environ[env] = str(scratch)
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        target = os.open(scratch / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment(self: _Session) -> dict[str, Any]:
    """The backend's facts about this worker's device (asked once per run)."""
    import torch

    env = self.backend.environment(self.device)
    env["torch"] = torch.__version__
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception:
        env["triton"] = None
    return env


ReferenceSession.environment = _environment  # type: ignore[attr-defined]
