"""`harness run --shard I/N`: a deterministic part of the selected cases, balanced by expected cost.

Any CI matrix, Slurm array or Kubernetes indexed job can run the N parts side by side and
`harness merge` joins their results. Every part computes the same split from the same inputs (the
selected cases and the suite's manifest), so no coordinator is needed: the cases are taken from the
most to the least expensive and each goes to the part with the least work so far (ties: the lower
part number), which keeps the parts within about one case's cost of each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from harness.errors import BadInput
from harness.suite.cases import Case

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# A case's expected cost in "case units": every case pays a fixed share (start-up, warm-up, a timing
# budget that is the same for all), plus the correctness work, which grows with the bytes it moves.
_FIXED = 1.0
_PER_GB = 0.5


def parse_shard(text: str) -> tuple[int, int]:
    """(I, N) from ``"I/N"``, 1 <= I <= N; BadInput naming the fix otherwise."""
    match = _SHARD.match(text or "")
    if not match:
        raise BadInput(f"--shard {text!r}: expected I/N, e.g. --shard 2/4 (part 2 of 4)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise BadInput(f"--shard {text}: I must be between 1 and N (parts are numbered 1..{max(count, 1)})")
    return index, count


def case_costs(cases: Sequence[Case], suite: Path, backend: str) -> dict[str, float]:
    """Expected cost of each case on ``backend`` from ``<suite>/manifest.json`` (1 where it says nothing)."""
    sizes: dict[str, dict[str, object]] = {}
    manifest = suite / "manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        sizes = {str(c["name"]): (c.get("sizes") or {}).get(backend) or {} for c in data.get("cases", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    costs = {}
    for case in cases:
        moved = sizes.get(case.name, {}).get("bytes_moved")
        gigabytes = float(moved) / 1e9 if isinstance(moved, (int, float)) and moved > 0 else 0.0
        costs[case.name] = _FIXED + _PER_GB * gigabytes
    return costs


def split(cases: Sequence[Case], count: int, costs: dict[str, float]) -> list[list[Case]]:
    """``cases`` in ``count`` parts of similar total cost, each in the suite's order."""
    order = {c.name: i for i, c in enumerate(cases)}
    parts: list[list[Case]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for case in sorted(cases, key=lambda c: (-costs.get(c.name, _FIXED), c.name)):
        target = min(range(count), key=lambda i: (loads[i], i))
        parts[target].append(case)
        loads[target] += costs.get(case.name, _FIXED)
    return [sorted(part, key=lambda c: order[c.name]) for part in parts]


def select_shard(cases: Sequence[Case], shard: str, suite: Path, backend: str) -> list[Case]:
    """The cases of part ``shard`` ("I/N") of ``cases``."""
    index, count = parse_shard(shard)
    costs = case_costs(cases, suite, backend if backend != "all" else "cpu")
    return split(cases, count, costs)[index - 1]
