"""Evaluations from many conversations, run one at a time by the thread that owns the device.

Requests to the model run concurrently (one thread per conversation slot), but timings must never
overlap, and Ctrl-C must reach the evaluation in progress so that its worker processes are killed
and its scratch folder removed, as in `harness eval`. Both hold when the main thread runs every
evaluation: conversation threads hand their evaluation over with `submit` and wait; the main thread
`serve`s them in order until every conversation has ended.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Interrupted(Exception):
    """The run is stopping (Ctrl-C): the evaluation was not run, or was cut short."""


class _Job(Generic[T]):
    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except KeyboardInterrupt:
            self.error = Interrupted("interrupted while evaluating")
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked for the evaluation
            self.error = exc
        finally:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class EvaluationQueue:
    """Hands callables from conversation threads to the serving (main) thread, one at a time."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[_Job[object]] = queue.Queue()
        self._closed = threading.Event()

    def submit(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the serving thread and return its value (or raise its exception); Interrupted
        when the queue is closed."""
        if self._closed.is_set():
            raise Interrupted("the run is stopping")
        job: _Job[T] = _Job(fn)
        self._jobs.put(job)  # type: ignore[arg-type]
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[return-value]

    def serve(self, finished: Callable[[], bool], poll_s: float = 0.1) -> None:
        """Run submitted jobs until ``finished()``; KeyboardInterrupt propagates (after `close`)."""
        try:
            while not finished():
                try:
                    job = self._jobs.get(timeout=poll_s)
                except queue.Empty:
                    continue
                job.run()
        except KeyboardInterrupt:
            self.close()
            raise

    def close(self) -> None:
        """Refuse new jobs and fail those waiting, so their threads stop."""
        self._closed.set()
        while True:
            try:
                self._jobs.get_nowait().fail(Interrupted("the run is stopping"))
            except queue.Empty:
                return
