"""Where an agent run keeps its files, and the checks that keep them inside the run folder.

``<out>/attempts.jsonl``                         one line per attempt (`attempt_log`)
``<out>/agent-run.json``                         the run artifact (schema v1/agent-run)
``<out>/attempts/<team>/<tier>/<case>/attempt_NN.py``  every attempt's code: the pass-N layout, so
                                                 ``harness run --solutions <out>/attempts/<team> --pass-n N`` works
``<out>/submissions/<team>/<tier>/<case>.py``    the best attempt per case: a solution set for ``harness run``
``<out>/submissions/<team>/meta.json``           who made it and how (schema v1/agent-submission)

The team name becomes a folder name, so it is restricted to ``[A-Za-z0-9_-]`` and every path is
checked to resolve inside its root (a symlinked team folder pointing elsewhere is refused too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.agent.seams import BadInput

TEAM_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
ATTEMPTS_LOG = "attempts.jsonl"
RUN_ARTIFACT = "agent-run.json"
META_NAME = "meta.json"


def check_team(team: str) -> str:
    """``team`` when it is a usable team name; BadInput naming --team otherwise."""
    if not TEAM_PATTERN.fullmatch(team or ""):
        raise BadInput(f"--team {team!r}: a team name may hold only letters, digits, '_' and '-' (e.g. --team my_team)")
    return team


def inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refusing a path that resolves outside ``root`` (BadInput)."""
    path = root.joinpath(*parts)
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise BadInput(f"{path} resolves to {resolved}, outside {root}; choose another --team or --out")
    return path


@dataclass(frozen=True)
class RunLayout:
    """The paths of one team's agent run in ``out``."""

    out: Path
    team: str

    def __post_init__(self) -> None:
        check_team(self.team)
        inside(self.out, "attempts", self.team)
        inside(self.out, "submissions", self.team)

    @property
    def attempts_log(self) -> Path:
        return self.out / ATTEMPTS_LOG

    @property
    def run_artifact(self) -> Path:
        return self.out / RUN_ARTIFACT

    @property
    def attempts_dir(self) -> Path:
        return self.out / "attempts" / self.team

    @property
    def submission_dir(self) -> Path:
        return self.out / "submissions" / self.team

    @property
    def meta(self) -> Path:
        return self.submission_dir / META_NAME

    def attempt_file(self, tier: str, case: str, index: int, width: int = 2) -> Path:
        return inside(self.attempts_dir, tier, case, f"attempt_{index:0{width}d}.py")

    def submission_file(self, tier: str, case: str) -> Path:
        return inside(self.submission_dir, tier, f"{case}.py")

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder (how attempts.jsonl names files)."""
        return path.relative_to(self.out).as_posix()
