"""`--runtime docker|auto` end to end: the harness runs inside the CPU image, provenance names it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.containers.runtime import choose_runtime
from tests.conftest import FAST_ARGS, load_json, run_harness

IMAGE = os.environ.get("HARNESS_TEST_IMAGE", "kernel-harness/cpu:dev")


def _need_image() -> None:
    import harness.containers as container

    reason = None
    if not container.engine_available():
        reason = "no Docker engine answers (bash docker/start-dockerd.sh)"
    else:
        try:
            container.image_info(IMAGE)
        except Exception as exc:  # noqa: BLE001
            reason = f"image {IMAGE} missing ({exc})"
    if reason:
        if os.environ.get("HARNESS_REQUIRE_CONTAINER") == "1":
            pytest.fail(f"{reason} and HARNESS_REQUIRE_CONTAINER=1", pytrace=False)
        pytest.skip(reason)


@pytest.mark.container
def test_run_in_docker_writes_valid_artifacts_naming_the_image(suite: Path, solutions: Path, tmp_path: Path) -> None:
    _need_image()
    out = tmp_path / "out"
    proc = run_harness(
        "run", "--runtime", "docker", "--image", IMAGE, "--suite", str(suite), "--solutions", str(solutions),
        "--out", str(out), *FAST_ARGS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = load_json(out / "result.json")
    provenance = result["provenance"]
    assert provenance["runtime"] == "docker"
    assert provenance["container_image"]["name"] == IMAGE
    assert provenance["container_image"]["id"].startswith("sha256:")
    assert result["environment"]["in_container"] is True
    assert {c["name"]: c["status"] for c in result["cases"]}["scale"] == "pass"
    assert run_harness("validate", str(out / "result.json"), str(out / "leaderboard.json")).returncode == 0


@pytest.mark.container
def test_run_in_docker_with_the_default_suite(tmp_path: Path) -> None:
    """No --suite: the default (benchmark/ on the host) is mounted and named for the inner harness."""
    _need_image()
    out = tmp_path / "out"
    proc = run_harness(
        "run", "--runtime", "docker", "--image", IMAGE, "--solutions", "benchmark/solutions/reference",
        "--case", "relu", "--out", str(out), *FAST_ARGS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [c["status"] for c in load_json(out / "result.json")["cases"]] == ["pass"]


@pytest.mark.container
def test_eval_in_docker_prints_one_json_object(suite: Path, solutions: Path) -> None:
    _need_image()
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--runtime", "docker",
        "--image", IMAGE, "--json", *FAST_ARGS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    assert payload["result"]["status"] == "pass"
    assert payload["provenance"]["runtime"] == "docker"


@pytest.mark.container
def test_a_build_made_in_one_container_is_found_by_the_next(suite: Path, solutions: Path, tmp_path: Path) -> None:
    from tests.test_build_cache import FAKE_BUILD

    _need_image()
    (solutions / "t1/scale.py").write_text(FAKE_BUILD.replace("VARIANT", "in-docker"))
    said = []
    for _ in range(2):
        proc = run_harness(
            "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--runtime", "docker",
            "--image", IMAGE, "--json", *FAST_ARGS, "--build-cache", str(tmp_path / "cache"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        said.append(json.loads(proc.stdout)["result"]["output"]["stdout"])
    assert "fresh build" in said[0] and "reused build in-docker" in said[1]


def test_auto_falls_back_to_local_with_a_note_when_no_engine_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    choice = choose_runtime("auto", "cpu", None)
    assert choice.runtime == "local"
    assert choice.note and "no Docker engine answered" in choice.note


def test_docker_runtime_without_engine_is_an_environment_error(suite: Path, solutions: Path) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--runtime", "docker",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error:")


def test_the_inner_command_is_rebuilt_from_the_parsed_options_without_the_runtime_ones() -> None:
    from harness.cli.common import to_argv
    from harness.cli.run import run_cmd

    ctx = run_cmd.make_context(
        "run", ["--runtime=docker", "--image", "x", "--suite=s", "--out", "o", "--tier", "t1", "--tier", "t2",
                "--warm-cache", "--quiet", "--budget-ms", "400"],  # the last is the default: left out
    )  # fmt: skip
    argv = to_argv(run_cmd, ctx.params, skip=("runtime", "image"))
    assert argv == ["--suite", "s", "--tier", "t1", "--tier", "t2", "--out", "o", "--quiet", "--warm-cache"]


def test_auto_fallback_is_recorded_in_the_result(suite: Path, solutions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_harness(
        "run", "--runtime", "auto", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out),
        "--case", "scale", *FAST_ARGS, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    provenance = load_json(out / "result.json")["provenance"]
    assert provenance["runtime"] == "local"
    assert "ran locally without container isolation" in provenance["runtime_note"]
