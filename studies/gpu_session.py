"""One device session in one command: environment check, timing study, harness runs, calibration.

Usage on the device machine (repository root, wheels installed, PYTHONPATH set)::

    python3 studies/gpu_session.py OUT STEP [STEP ...]

Steps (run in order, each with its own time limit, all under one deadline, SESSION_DEADLINE_S):
  env                     versions, nvidia-smi, `harness --help`, device selection checks
  study                   studies/gpu_timing_study.py -> OUT/study.json
  sidestream              the hidden-side-stream candidate of tests/test_gpu_backend.py through `harness eval`
  triton[:ARGS]           `harness run` of benchmark/solutions/triton -> runs/triton
  reference[:ARGS]        `harness run` of benchmark/solutions/reference -> runs/reference
  calibrate[:ARGS]        `harness calibrate` -> runs/<tag>.json
  kernelbench[:ARGS]      A/A over KernelBench problem files in .kb/level1 (studies/kernelbench_suite.py)
  evalwall                wall time of `harness eval` of relu against its reference, three times
  pytest[:ARGS]           the tests marked gpu (test files given in ARGS, else the GPU test files)
ARGS are extra command-line words separated by commas (e.g. ``triton:--budget-ms,100,--tier,t2``);
``tag=NAME`` names the run folder, ``env=NAME=VALUE`` sets an environment variable for the step.
Everything printed goes to OUT/log.txt too; run folders (under SESSION_RUNS, default
/tmp/gpu_runs) are packed into OUT/runs.tgz at the end.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(
        os.environ.get("SESSION_RUNS", "/tmp/gpu_runs")
    )  # packed into OUT/runs.tgz (few files come back)
    runs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + float(os.environ.get("SESSION_DEADLINE_S", "540"))
    log = (out / "log.txt").open("a", buffering=1)

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")

    def run(cmd: list[str], limit: float, env: dict[str, str] | None = None) -> int:
        left = deadline - time.monotonic()
        if left < 20:
            say(f"SKIPPED (deadline): {shlex.join(cmd)}")
            return 124
        limit = min(limit, left - 10)
        say(f"\n$ {shlex.join(cmd)}   [limit {limit:.0f} s]")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=limit,
                env={**os.environ, **(env or {})},
            )
            code, text = proc.returncode, proc.stdout + proc.stderr
        except OSError as exc:
            code, text = 127, f"cannot run: {exc}"
        except subprocess.TimeoutExpired as exc:
            code = 124
            text = (
                (exc.stdout or b"").decode(errors="replace")
                if isinstance(exc.stdout, bytes)
                else (exc.stdout or "")
            )
            text += "\nTIMEOUT"
        log.write(text + "\n")
        tail = text[-3000:]
        print(tail, flush=True)
        say(f"[exit {code} after {time.monotonic() - started:.1f} s]")
        return code

    for step in argv[1:]:
        name, _, extra = step.partition(":")
        args = [a for a in extra.split(",") if a] if extra else []
        step_env = dict(a[4:].split("=", 1) for a in args if a.startswith("env="))
        args = [a for a in args if not a.startswith("env=")]
        if name == "env":
            run(["nvidia-smi"], 30)
            run(
                [
                    PY,
                    "-c",
                    "import sys, torch, triton, jsonschema; print(sys.version); print(torch.__version__, "
                    "torch.version.cuda, triton.__version__, torch.cuda.get_device_name(0), "
                    "torch.cuda.device_count())",
                ],
                60,
            )
            run([PY, "-m", "harness", "--help"], 60)
            run([PY, "-m", "harness", "list", "--backend", "gpu"], 60)
            # device selection: a missing device is a warning; none left is an error (exit 3)
            run(
                [
                    PY,
                    "-m",
                    "harness",
                    "eval",
                    "benchmark/t1/relu.py",
                    "benchmark/solutions/reference/t1/relu.py",
                    "--backend",
                    "gpu",
                    "--devices",
                    "7",
                ],
                60,
            )
        elif name == "study":
            run([PY, "studies/gpu_timing_study.py", str(out / "study.json")], 300)
        elif name == "sidestream":
            sys.path.insert(0, str(ROOT))
            from tests.test_gpu_backend import HIDDEN_SIDE_STREAM, JOINED_SIDE_STREAM, SIDE_STREAM_CASE

            for label, source in (("hidden", HIDDEN_SIDE_STREAM), ("joined", JOINED_SIDE_STREAM)):
                path = runs / f"side_stream_{label}.py"
                path.write_text(source)
                run(
                    [
                        PY,
                        "-m",
                        "harness",
                        "eval",
                        SIDE_STREAM_CASE,
                        str(path),
                        "--backend",
                        "gpu",
                        "--budget-ms",
                        "200",
                        "--out",
                        str(runs / f"side_stream_{label}.json"),
                        *args,
                    ],
                    180,
                )
        elif name in ("triton", "reference"):
            tag = next((a for a in args if a.startswith("tag=")), f"tag={name}")[4:]
            args = [a for a in args if not a.startswith("tag=")]
            run(
                [
                    PY,
                    "-m",
                    "harness",
                    "run",
                    "--backend",
                    "gpu",
                    "--solutions",
                    f"benchmark/solutions/{name}",
                    "--out",
                    str(runs / tag),
                    "--overwrite",
                    "--quiet",
                    *args,
                ],
                900,
                step_env,
            )
        elif name == "kernelbench":
            tag = next((a for a in args if a.startswith("tag=")), "tag=kernelbench")[4:]
            args = [a for a in args if not a.startswith("tag=")]
            suite = runs / "kb-suite"
            run([PY, "studies/kernelbench_suite.py", ".kb/level1", str(suite)], 60)
            run(
                [
                    PY, "-m", "harness", "run", "--backend", "gpu", "--suite", str(suite),
                    "--solutions", str(suite / "solutions" / "reference"), "--out", str(runs / tag),
                    "--overwrite", "--quiet", *args,
                ],
                900,
                step_env,
            )  # fmt: skip
        elif name == "evalwall":
            for _ in range(3):
                run(
                    [
                        PY, "-m", "harness", "eval", "benchmark/t1/relu.py",
                        "benchmark/solutions/reference/t1/relu.py", "--backend", "gpu", "--json", *args,
                    ],
                    120,
                    step_env,
                )  # fmt: skip
        elif name == "calibrate":
            tag = next((a for a in args if a.startswith("tag=")), "tag=calibration")[4:]
            args = [a for a in args if not a.startswith("tag=")]
            run(
                [
                    PY,
                    "-m",
                    "harness",
                    "calibrate",
                    "--backend",
                    "gpu",
                    "--out",
                    str(runs / f"{tag}.json"),
                    *args,
                ],
                900,
                step_env,
            )
        elif name == "pytest":
            run(
                [
                    PY,
                    "-m",
                    "pytest",
                    "-q",
                    "-m",
                    "gpu",
                    *(args or ["tests/test_gpu_backend.py", "tests/test_interference.py", "tests/test_triton_solutions.py"]),
                ],
                400,
                step_env,
            )
        else:
            say(f"unknown step {step}")
    with tarfile.open(out / "runs.tgz", "w:gz") as tar:
        tar.add(runs, arcname="runs")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
