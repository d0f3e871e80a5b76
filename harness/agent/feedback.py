"""The feedback a model gets about its candidate: built from the case result, within a fixed size.

Compiler output and tracebacks can run to megabytes and repeat themselves; a model needs the first
error and the end of the trace, not all of it. Repeated lines are removed and long text is cut to
its head and tail, so the message stays within a fixed budget whatever the candidate printed. The
same text is sent by `harness agent` and printed by `harness eval --feedback` for external agents.
"""

from __future__ import annotations

from harness.agent.seams import CaseResult, shape_label

REASON_BUDGET = 2000  # characters of the reason kept (head and tail)
OUTPUT_BUDGET = 1500  # characters of the candidate's stderr kept (head and tail)
HEAD_SHARE = 0.6  # share of a budget given to the head of a long text

PASS_REQUEST = (
    "Your ModelNew is correct. Make it faster while keeping it correct: reply with the complete new file "
    "in one ```python block."
)
FIX_REQUEST = "Fix the problem and reply with the complete corrected file in one ```python block."


def without_repeats(text: str) -> str:
    """``text`` with every line that already occurred (ignoring surrounding blanks) left out."""
    seen: set[str] = set()
    kept: list[str] = []
    dropped = 0
    for line in text.splitlines():
        key = line.strip()
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(line)
    if dropped:
        kept.append(f"[{dropped} repeated line(s) removed]")
    return "\n".join(kept)


def head_and_tail(text: str, budget: int) -> str:
    """``text`` if it fits ``budget`` characters, else its head and tail with a note of what was cut."""
    if len(text) <= budget:
        return text
    marker = "\n[... {} characters cut ...]\n"
    room = max(0, budget - len(marker.format(len(text))))
    head = int(room * HEAD_SHARE)
    tail = room - head
    cut = len(text) - head - tail
    return text[:head] + marker.format(cut) + (text[-tail:] if tail else "")


def compact(text: str, budget: int) -> str:
    """Repeated lines removed, then cut to ``budget`` characters."""
    return head_and_tail(without_repeats(text.strip()), budget)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def feedback_text(result: CaseResult) -> str:
    """What the model is told about one evaluated candidate."""
    status = result.status.upper()
    lines = [
        f"Result: {status}" + (f" (phase reached: {result.phase})" if result.phase and result.status != "pass" else "")
    ]
    c = result.correctness
    if result.status != "pass":
        if result.reason:
            lines += ["Reason:", compact(result.reason, REASON_BUDGET)]
        if c is not None and (c.max_abs_error is not None or c.max_rel_error is not None):
            lines.append(
                f"Max absolute error: {_num(c.max_abs_error)}; max relative error: {_num(c.max_rel_error)} "
                f"(tolerances: atol {c.atol:g}, rtol {c.rtol:g}; {c.passed_trials} of {c.trials} trial(s) passed)"
            )
        if result.stderr.strip():
            lines += ["Your program's stderr:", compact(result.stderr, OUTPUT_BUDGET)]
        lines.append(FIX_REQUEST)
        return "\n".join(lines) + "\n"
    if c is not None:
        lines.append(
            f"Correctness: {c.passed_trials} of {c.trials} trial(s) passed; max absolute error "
            f"{_num(c.max_abs_error)}, max relative error {_num(c.max_rel_error)}"
        )
    ref, sol = result.reference_timing, result.solution_timing
    if ref and sol:
        lines.append(
            f"Time per call (median of {sol.repetitions}): reference {ref.median_ms:.4g} ms, "
            f"yours {sol.median_ms:.4g} ms"
        )
    for shape in result.shapes:  # a case of several shapes: each one's times
        ref, sol = shape.reference_timing, shape.solution_timing
        if ref and sol:
            lines.append(
                f"{shape_label(shape.index, len(result.shapes), shape.sizes)}: reference {ref.median_ms:.4g} ms, "
                f"yours {sol.median_ms:.4g} ms"
            )
    if result.speedup is not None:
        mean = f" (geometric mean over {len(result.shapes)} shapes)" if result.shapes else ""
        lines.append(f"Speedup: {result.speedup:.3f}x{mean}; score {result.score:.1f} of 100")
    lines.append(PASS_REQUEST)
    return "\n".join(lines) + "\n"
