"""A device thread that dies must fail the run loudly, never look like a shorter finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evaluation.evaluate import EvalConfig
from harness.evaluation.runner import Runner
from harness.suite.cases import discover


def test_a_crashing_device_thread_raises_instead_of_returning_fewer_cases(
    suite: Path, solutions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(EvalConfig(), solutions)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "_device_loop", boom)
    with pytest.raises(RuntimeError, match="worker thread for cpu failed: OSError"):
        runner.run(["cpu"], discover(suite))
