"""What `harness agent` shows: a live bar per case (turns done of turns allowed), what each conversation
is doing now, one line per finished attempt, and the final table. Used only by the CLI, which prints."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.agent.records import Attempt
from harness.agent.seams import Case, ProgressObserver

STYLE = {"pass": "green", "fail": "red", "error": "red", "timeout": "magenta"}


class AgentProgress:
    """An `Observer` of the loop that draws on ``console`` (stderr)."""

    def __init__(self, console: Console, turns: int, enabled: bool = True) -> None:
        self.console = console
        self.turns = turns
        self.enabled = enabled
        self._bar = ProgressObserver(console, enabled)  # the bar of `harness run`, one task per case here
        self.progress = self._bar.progress
        self._tasks: dict[str, Any] = {}
        self._best: dict[str, float] = {}
        self._used: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> AgentProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)

    def _state(self, case: Case, text: str) -> None:
        task = self._tasks.get(case.name)
        if task is not None:
            best = self._best.get(case.name)
            tail = f"  best reward {best:.2f}" if best is not None else ""
            self.progress.update(task, current=f"{text}{tail}")

    def planned(self, conversations: Sequence[tuple[Case, int, int]]) -> None:
        with self._lock:
            totals: dict[str, tuple[Case, int, int]] = {}
            for case, rollout, used in conversations:
                _, total, done = totals.get(case.name, (case, 0, 0))
                totals[case.name] = (case, total + self.turns, done + used)
                self._used[(case.name, rollout)] = used
            for name, (case, total, done) in totals.items():
                self._tasks[name] = self.progress.add_task(
                    f"{case.tier}/{name}", total=total, completed=done, current="waiting"
                )

    def turn_started(self, case: Case, rollout: int, turn: int) -> None:
        with self._lock:
            self._state(case, f"rollout {rollout} turn {turn}: asking the model")

    def evaluating(self, case: Case, rollout: int, turn: int) -> None:
        with self._lock:
            self._state(case, f"rollout {rollout} turn {turn}: evaluating")

    def attempt_finished(self, attempt: Attempt) -> None:
        with self._lock:
            task = self._tasks.get(attempt.case)
            if attempt.answered:
                self._best[attempt.case] = max(self._best.get(attempt.case, 0.0), attempt.reward)
                self._used[(attempt.case, attempt.rollout)] = self._used.get((attempt.case, attempt.rollout), 0) + 1
                if task is not None:
                    self.progress.advance(task)
        if not self.enabled:
            return
        style = STYLE.get(attempt.status, "")
        speed = f" {attempt.result.speedup:.2f}x" if attempt.result and attempt.result.speedup else ""
        why = f" - {escape((attempt.reason or '')[:160])}" if attempt.status != "pass" and attempt.reason else ""
        self.console.print(
            f"  [{style}]{attempt.status:7}[/] {attempt.tier}/{attempt.case} rollout {attempt.rollout} "
            f"turn {attempt.turn}: reward {attempt.reward:.2f}{speed}{why}"
        )

    def conversation_ended(self, case: Case, rollout: int, reason: str) -> None:
        with self._lock:
            task = self._tasks.get(case.name)
            if task is not None:  # turns not needed any more count as done: the bar shows what is left
                self.progress.advance(task, max(0, self.turns - self._used.get((case.name, rollout), 0)))
                self._state(case, f"rollout {rollout} ended: {reason}")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def summary_table(payload: dict[str, Any]) -> Table:
    """One row per case of an agent-run payload."""
    table = Table(title=f"team {payload['team']}, model {payload['model']}", title_justify="left")
    for column in ("tier", "case", "status", "first pass", "best reward", "best speedup", "turns", "tokens", "reason"):
        table.add_column(
            column, justify="right" if column in ("first pass", "best reward", "turns", "tokens") else "left"
        )
    for c in payload["cases"]:
        style = STYLE.get(c["status"], "dim")
        table.add_row(
            c["tier"],
            c["name"],
            f"[{style}]{c['status']}[/]",
            _fmt(c["first_pass_turn"], "d"),
            f"{c['best_reward']:.2f}",
            _speedup(c["best_speedup"]),
            str(c["turns_used"]),
            str(c["tokens"]["total_tokens"]),
            escape((c.get("reason") or "")[:120]),
        )
    return table


def summary_lines(payload: dict[str, Any]) -> list[str]:
    s = payload["summary"]
    scores = s["scores"]
    pass_k = ", ".join(f"pass@{k} {_fmt(v, '.2f')}" for k, v in s["pass_at_k"].items())
    within = ", ".join(f"{n}: {_fmt(v, '.0%')}" for n, v in s["solved_within_turns"].items())
    lines = [
        f"solved {s['solved']} of {s['evaluated_cases']} case(s); {pass_k}; solved within N turns: {within}",
        f"mean best reward {_fmt(s['mean_best_reward'], '.3f')}; weighted score {scores['total_weighted_score']:.1f} / "
        f"{scores.get('max_weighted_score', 0):.1f}; geomean speedup {_speedup(scores['geomean_speedup'])}; "
        f"fast_1 {_fmt(scores['fast_p'].get('1'), '.0%')}",
        f"{s['attempts']} attempt(s), {s['endpoint_errors']} endpoint error(s), "
        f"{s['extraction_failures']} without code; {s['tokens']['total_tokens']} tokens; "
        f"{s['latency_s']:.1f} s waiting for the model",
    ]
    if not payload["complete"]:
        lines.append("[red]INCOMPLETE[/]: the run was interrupted")
    return lines
