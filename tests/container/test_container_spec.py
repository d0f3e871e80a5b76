"""Unit tests of the container run spec and host->container path mapping: no Docker engine needed.

These pin the isolation settings (network, read-only root, limits, capabilities) and the device
plumbing for GPUs and Ascend NPUs, which cannot be exercised on a machine without those devices.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.containers as c


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    suite = tmp_path / "suite"
    solutions = tmp_path / "sols"
    out = tmp_path / "results" / "run1"
    (suite / "t1").mkdir(parents=True)
    (suite / "t1" / "add.py").write_text("# case\n")
    (solutions / "t1").mkdir(parents=True)
    return {"root": tmp_path, "suite": suite, "solutions": solutions, "out": out}


def _mounts(tree: dict[str, Path]) -> c.Mounts:
    return c.Mounts(suite=tree["suite"], solutions=tree["solutions"], out=tree["out"])


# --- isolation settings --------------------------------------------------------------------------------


def test_cpu_spec_isolation(tree: dict[str, Path]) -> None:
    spec = c.container_spec("img:tag", ["run", "--backend", "cpu"], backend="cpu", mounts=_mounts(tree))
    assert spec["image"] == "img:tag"
    assert spec["command"] == ["run", "--backend", "cpu"]
    assert "entrypoint" not in spec  # the image's ENTRYPOINT ["harness"] stays
    assert spec["network_mode"] == "none"
    assert spec["read_only"] is True
    assert spec["tmpfs"]["/tmp"].startswith("rw,exec")
    assert "size=2g" in spec["tmpfs"]["/tmp"]
    assert spec["mem_limit"] == 8 << 30
    assert spec["memswap_limit"] == spec["mem_limit"]  # no swap: killed at the limit
    assert spec["pids_limit"] == 1024
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges"]
    assert spec["user"] == "1000:1000"
    assert spec["init"] is True
    assert spec["labels"][c.MANAGED_LABEL] == "true"
    assert spec["labels"][c.BACKEND_LABEL] == "cpu"
    assert spec["environment"]["HARNESS_IN_CONTAINER"] == "1"
    assert spec["environment"]["HARNESS_IMAGE"] == "img:tag"
    for key in (
        "device_requests",
        "devices",
        "group_add",
        "nano_cpus",
        "cpuset_cpus",
        "ipc_mode",
    ):
        assert key not in spec
    assert spec["shm_size"] == "2g"  # torch.multiprocessing needs more than Docker's 64 MB /dev/shm


def test_volumes_map_to_fixed_container_paths(tree: dict[str, Path]) -> None:
    spec = c.container_spec("img", [], mounts=_mounts(tree))
    assert spec["volumes"] == {
        str(tree["suite"].resolve()): {"bind": "/suite", "mode": "ro"},
        str(tree["solutions"].resolve()): {"bind": "/solutions", "mode": "ro"},
        str(tree["out"].resolve()): {"bind": "/out", "mode": "rw"},
    }


def test_build_cache_is_a_writable_mount_the_inner_harness_is_pointed_at(tree: dict[str, Path]) -> None:
    cache = tree["root"] / "build-cache"
    mounts = c.Mounts(suite=tree["suite"], out=tree["out"], build_cache=cache)
    spec = c.container_spec("img", [], mounts=mounts)
    assert spec["volumes"][str(cache.resolve())] == {"bind": "/build-cache", "mode": "rw"}
    assert spec["environment"]["HARNESS_BUILD_CACHE"] == "/build-cache"
    assert c.map_harness_args(["--build-cache", str(cache)], mounts) == ["--build-cache", "/build-cache"]
    assert "HARNESS_BUILD_CACHE" not in c.container_spec("img", [], mounts=_mounts(tree))["environment"]


def test_solutions_inside_suite_go_through_suite(tree: dict[str, Path]) -> None:
    inner = tree["suite"] / "solutions" / "reference"
    (inner / "t1").mkdir(parents=True)
    mounts = c.Mounts(suite=tree["suite"], solutions=inner, out=tree["out"])
    assert [target for _, target, _ in mounts.pairs()] == ["/suite", "/out"]
    args = ["run", "--suite", str(tree["suite"]), "--solutions", str(inner), "--out", str(tree["out"])]
    assert c.map_harness_args(args, mounts) == [
        "run",
        "--suite",
        "/suite",
        "--solutions",
        "/suite/solutions/reference",
        "--out",
        "/out",
    ]


def test_extra_readonly_mounts(tree: dict[str, Path]) -> None:
    mounts = c.Mounts(suite=tree["suite"], extra_ro={str(tree["root"]): "/data"})
    vols = c.container_spec("img", [], mounts=mounts)["volumes"]
    assert vols[str(tree["root"].resolve())] == {"bind": "/data", "mode": "ro"}


def test_limits_cpus_and_threads() -> None:
    spec = c.container_spec("img", [], limits=c.Limits(memory="512m", pids=64, cpus=2.5))
    assert spec["mem_limit"] == 512 << 20
    assert spec["pids_limit"] == 64
    assert spec["nano_cpus"] == 2_500_000_000
    assert spec["environment"]["OMP_NUM_THREADS"] == "2"
    spec = c.container_spec("img", [], limits=c.Limits(cpuset="0-3,8"))
    assert spec["cpuset_cpus"] == "0-3,8"
    assert spec["environment"]["OMP_NUM_THREADS"] == "5"


def test_env_overrides_defaults() -> None:
    spec = c.container_spec("img", [], limits=c.Limits(cpus=4), env={"OMP_NUM_THREADS": "1", "X": "y"})
    assert spec["environment"]["OMP_NUM_THREADS"] == "1"
    assert spec["environment"]["X"] == "y"


def test_entrypoint_override() -> None:
    spec = c.container_spec("img", ["-c", "print(1)"], entrypoint=["python"])
    assert spec["entrypoint"] == ["python"]


def test_gpu_device_request_ids() -> None:
    docker = pytest.importorskip("docker")
    spec = c.container_spec("img", [], backend="gpu", gpus=["0", "3"])
    (req,) = spec["device_requests"]
    assert isinstance(req, docker.types.DeviceRequest)
    assert req.device_ids == ["0", "3"]
    assert req.capabilities == [["gpu"]]
    assert spec["shm_size"] == "2g"
    assert spec["labels"][c.BACKEND_LABEL] == "gpu"


@pytest.mark.parametrize("gpus", [["all"], []])
def test_gpu_device_request_all(gpus: list[str]) -> None:
    pytest.importorskip("docker")
    (req,) = c.container_spec("img", [], backend="cuda", gpus=gpus)["device_requests"]
    assert req.count == -1
    assert not req.device_ids


def test_gpu_ipc_host() -> None:
    pytest.importorskip("docker")
    spec = c.container_spec("img", [], backend="gpu", gpus=["all"], limits=c.Limits(ipc_host=True))
    assert spec["ipc_mode"] == "host"
    assert "shm_size" not in spec


def test_npu_devices_mounts_and_env() -> None:
    present = {"/usr/local/Ascend/driver", "/usr/local/bin/npu-smi", "/etc/ascend_install.info"}  # no dcmi
    gids = {"/dev/davinci4": 1001, "/dev/davinci5": 1001, "/dev/davinci_manager": 1001, "/dev/hisi_hdc": 0}
    spec = c.container_spec(
        "img",
        [],
        backend="npu",
        npu_devices=[4, 5],
        exists=present.__contains__,
        stat_gid=gids.get,
    )
    assert spec["devices"] == [
        "/dev/davinci4:/dev/davinci4:rwm",
        "/dev/davinci5:/dev/davinci5:rwm",
        "/dev/davinci_manager:/dev/davinci_manager:rwm",
        "/dev/devmm_svm:/dev/devmm_svm:rwm",
        "/dev/hisi_hdc:/dev/hisi_hdc:rwm",
    ]
    for path in present:
        assert spec["volumes"][path] == {"bind": path, "mode": "ro"}
    assert "/usr/local/dcmi" not in spec["volumes"]
    assert spec["group_add"] == ["1001"]  # root's group 0 is never added
    assert spec["environment"]["ASCEND_RT_VISIBLE_DEVICES"] == "0,1"
    assert spec["shm_size"] == "2g"
    assert spec["network_mode"] == "none" and spec["read_only"] is True
    assert "device_requests" not in spec


def test_npu_needs_the_host_driver() -> None:
    with pytest.raises(c.ContainerError, match="Ascend driver"):
        c.container_spec("img", [], backend="npu", npu_devices=[0], exists=lambda p: False, stat_gid=lambda p: None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "cpu", "gpus": ["0"]}, "needs backend gpu"),
        ({"backend": "cpu", "npu_devices": [0]}, "needs backend npu"),
        ({"backend": "npu", "npu_devices": []}, "at least one"),
        ({"backend": "tpu"}, "unknown backend"),
    ],
)
def test_spec_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(c.ContainerError, match=match):
        c.container_spec("img", [], exists=lambda p: True, stat_gid=lambda p: None, **kwargs)


def test_container_error_is_an_environment_error() -> None:
    from harness.errors import EnvironmentUnavailable, ExitCode

    assert issubclass(c.ContainerError, EnvironmentUnavailable)
    assert c.ContainerError("x").exit_code == ExitCode.ENVIRONMENT


# --- path mapping ------------------------------------------------------------------------------------


def test_map_harness_args(tree: dict[str, Path]) -> None:
    args = [
        "run",
        "--backend",
        "cpu",
        "--suite",
        str(tree["suite"]),
        f"--solutions={tree['solutions']}",
        "--out",
        str(tree["out"]),
        "--case",
        "add",
        "--tier",
        "t1",
    ]
    assert c.map_harness_args(args, _mounts(tree)) == [
        "run",
        "--backend",
        "cpu",
        "--suite",
        "/suite",
        "--solutions=/solutions",
        "--out",
        "/out",
        "--case",
        "add",
        "--tier",
        "t1",
    ]


def test_map_paths_below_mounts_and_relative(tree: dict[str, Path]) -> None:
    mounts = _mounts(tree)
    assert c.map_harness_args([str(tree["suite"] / "t1" / "add.py")], mounts) == ["/suite/t1/add.py"]
    # not yet existing files under out (written by the harness)
    assert c.map_harness_args([str(tree["out"] / "sub" / "result.json")], mounts) == ["/out/sub/result.json"]
    assert c.map_harness_args(["suite/t1"], mounts, cwd=tree["root"]) == ["/suite/t1"]
    assert c.map_harness_args(["./sols"], mounts, cwd=tree["root"]) == ["/solutions"]


def test_longest_mount_wins(tree: dict[str, Path]) -> None:
    mounts = c.Mounts(suite=tree["root"], out=tree["out"])
    assert c.map_harness_args([str(tree["out"] / "x.json"), str(tree["suite"])], mounts) == [
        "/out/x.json",
        "/suite/suite",
    ]


def test_strict_rejects_unmounted_paths(tree: dict[str, Path]) -> None:
    other = tree["root"] / "elsewhere"
    other.mkdir()
    with pytest.raises(c.ContainerError, match="not inside a folder bound"):
        c.map_harness_args(["--suite", str(other)], _mounts(tree))
    assert c.map_harness_args(["--suite", str(other)], _mounts(tree), strict=False) == ["--suite", str(other)]


def test_path_options_without_slash(tree: dict[str, Path]) -> None:
    mounts = _mounts(tree)
    args = ["run", "--suite", "suite", "--solutions=sols", "--out", "results/run1", "--case", "suite"]
    assert c.map_harness_args(args, mounts, cwd=tree["root"]) == [
        "run",
        "--suite",
        "/suite",
        "--solutions=/solutions",
        "--out",
        "/out",
        "--case",
        "suite",  # a bare word after another option is a name, even if such a folder exists
    ]
    with pytest.raises(c.ContainerError, match="--out elsewhere is not inside"):
        c.map_harness_args(["--out", "elsewhere"], mounts, cwd=tree["root"])


def test_non_paths_untouched(tree: dict[str, Path]) -> None:
    args = ["eval", "--trials", "3", "--seed=7", "cpu", "add", "-q"]
    assert c.map_harness_args(args, _mounts(tree), cwd=tree["suite"]) == args


def test_mount_pairs_resolve_symlinks(tree: dict[str, Path]) -> None:
    link = tree["root"] / "link"
    link.symlink_to(tree["suite"])
    mounts = c.Mounts(suite=link)
    assert mounts.pairs()[0][0] == tree["suite"].resolve()
    assert c.map_harness_args([str(link / "t1")], mounts) == ["/suite/t1"]


def test_missing_default_image_message_names_the_nox_session() -> None:
    assert "nox -s image-cpu" in c.images._missing_image_message(c.DEFAULT_IMAGES["cpu"])
    assert "nox -s image-npu" in c.images._missing_image_message(c.DEFAULT_IMAGES["npu"])


def test_engine_available_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert c.engine_available(timeout_s=1) is False


def test_default_dockerfiles_exist() -> None:
    for backend in ("cpu", "gpu", "npu"):
        assert c.default_dockerfile(backend).is_file()
