"""Ranking teams: every submission re-scored on this machine, then ordered by total weighted score.

The rewards a run recorded are not trusted for ranking: they came from another machine, another
time, or another person's files. Each team folder (``<submissions>/<team>/`` with its meta.json) is
run again through `harness run` (same isolation, same checks, one result.json per team under
``<out>/teams/``), and the leaderboard is built from those results with the harness's own
leaderboard entries, plus the team and model from meta.json. Every team is scored on the same case
list: each case some team submitted (a case a team left out counts 0 for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.agent.artifact import provenance
from harness.agent.layout import META_NAME, check_team
from harness.agent.seams import (
    BadInput,
    ExitCode,
    discover,
    envelope,
    host_environment,
    leaderboard_payload,
    load_artifact,
)

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"


@dataclass(frozen=True)
class TeamSubmission:
    team: str
    path: Path
    meta: dict[str, Any]


def find_submissions(dirs: Sequence[Path]) -> list[TeamSubmission]:
    """Team folders in ``dirs``: a folder holding meta.json, or each such folder right below one."""
    found: list[TeamSubmission] = []
    for root in dirs:
        if not root.is_dir():
            raise BadInput(f"{root}: not a folder; pass submission folders such as runs/agent-1/submissions")
        folders = (
            [root] if (root / META_NAME).is_file() else sorted(p for p in root.iterdir() if (p / META_NAME).is_file())
        )
        if not folders:
            raise BadInput(
                f"{root}: no team submission here (a folder <team>/ with {META_NAME}, written by `harness agent`)"
            )
        for folder in folders:
            meta = load_artifact(folder / META_NAME, ["agent_submission"]).payload
            found.append(TeamSubmission(team=check_team(str(meta["team"])), path=folder, meta=meta))
    return found


def case_names(
    submissions: Sequence[TeamSubmission],
    suite: Path,
    tiers: Sequence[str] = (),
    names: Sequence[str] = (),
    keyword: str | None = None,
) -> list[str]:
    """The cases every team is scored on: those some team submitted, within the filters given."""
    wanted = {str(c["name"]) for s in submissions for c in s.meta.get("cases", [])}
    cases = [c.name for c in discover(suite, tiers, names, keyword) if c.name in wanted]
    if not cases:
        raise BadInput(f"no submitted case is a case of {suite} within the filters given; pass --suite of the runs")
    return cases


def rescore(
    submissions: Sequence[TeamSubmission],
    options: dict[str, Any],
    out: Path,
    console: Callable[..., Any],
) -> list[tuple[TeamSubmission, Path]]:
    """Run `harness run` on every team folder; returns each team with its result.json."""
    names = case_names(
        submissions, Path(options["suite"]), options.get("tiers", ()), options.get("names", ()), options.get("keyword")
    )
    results: list[tuple[TeamSubmission, Path]] = []
    used: set[str] = set()
    for submission in submissions:
        folder = submission.team
        while folder in used:  # the same team from several runs: one folder each
            folder += "_"
        used.add(folder)
        team_out = out / "teams" / folder
        from harness.cli.run import run_and_report, run_options  # `harness run` itself (the CLI imports us)

        team_options = run_options(
            options,
            solutions=submission.path,
            names=tuple(names),
            keyword=None,
            out=team_out,
            overwrite=True,
            resume=None,
            pass_n=1,
            baseline=None,
            eval_report=None,
            runtime_note=None,
        )
        console(stderr=True).print(f"re-scoring team {submission.team} ({submission.path})")
        code = run_and_report(team_options, quiet=bool(options.get("quiet")), allow_empty=True)
        if code == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        results.append((submission, team_out / "result.json"))
    return results


def team_leaderboard(
    scored: Sequence[tuple[TeamSubmission, Path]], config: dict[str, Any], suite: Path
) -> dict[str, Any]:
    """The leaderboard (schema v1/leaderboard) of the re-scored teams, best first."""
    entries = []
    complete = True
    environment: dict[str, Any] = host_environment()
    for submission, result_path in scored:
        run = load_artifact(result_path, ["run_result"]).payload
        complete = complete and bool(run["complete"])
        environment = run["environment"]
        for entry in leaderboard_payload(run)["entries"]:
            entry.update(
                team=submission.team,
                model=submission.meta.get("model"),
                solutions=str(submission.path),
                result=str(result_path),
                max_weighted_score=run["summaries"][entry["backend"]].get("max_weighted_score"),
            )
            entries.append(entry)
    entries.sort(key=lambda e: (-e["total_weighted_score"], e["team"], e["solutions"]))
    for rank, entry in enumerate(entries, start=1):
        entry["rank"] = rank
    payload = envelope("leaderboard", provenance(config, suite), environment)
    payload.update(entries=entries, complete=complete)
    return payload


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


COLUMNS = ("rank", "team", "model", "backend", "score", "max", "pass rate", "geomean", "fast_1")


def leaderboard_rows(payload: dict[str, Any]) -> list[list[str]]:
    """One row of `COLUMNS` per entry: what both the table and the markdown show."""
    return [
        [
            str(e["rank"]),
            str(e.get("team", e["solutions"])),
            str(e.get("model") or "-"),
            e["backend"],
            f"{e['total_weighted_score']:.1f}",
            _fmt(e.get("max_weighted_score"), ".1f"),
            _fmt(e["pass_rate"], ".0%"),
            _fmt(e["geomean_speedup"], ".3f") + ("x" if e["geomean_speedup"] is not None else ""),
            _fmt((e.get("fast_p") or {}).get("1"), ".0%"),
        ]
        for e in payload["entries"]
    ]


def leaderboard_markdown(payload: dict[str, Any]) -> str:
    """The leaderboard as a markdown table (for a README, a PR comment or $GITHUB_STEP_SUMMARY)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in leaderboard_rows(payload)]
    if not payload["complete"]:
        lines.append("\n**Incomplete**: a re-scoring run was interrupted.")
    return "\n".join(lines) + "\n"
