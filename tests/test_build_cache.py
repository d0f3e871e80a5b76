"""The build cache: a solution's compiled kernels survive to its next run, and only to its own."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.evaluation import build_cache
from tests.conftest import FAST_ARGS, run_harness

# Stands in for load_inline: "compiles" into $TORCH_EXTENSIONS_DIR unless a build is already there,
# and says which on stdout (which the harness keeps in the case result).
FAKE_BUILD = """
import os
import torch.nn as nn

_DIR = os.path.join(os.environ["TORCH_EXTENSIONS_DIR"], "kh_scale_fake")
if os.path.exists(os.path.join(_DIR, "scale.so")):
    print("reused build", open(os.path.join(_DIR, "scale.so")).read())
else:
    os.makedirs(_DIR, exist_ok=True)
    with open(os.path.join(_DIR, "scale.so"), "w") as f:
        f.write("VARIANT")
    open(os.path.join(_DIR, "lock"), "w").close()
    print("fresh build")

class ModelNew(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor
    def forward(self, x):
        return x * self.factor
"""


def _stdout_of(suite: Path, candidate: Path, *extra: str) -> str:
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(candidate), "--json", *FAST_ARGS, *extra)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass"
    return result["output"]["stdout"]


def test_second_run_reuses_the_build_and_other_files_do_not_see_it(
    suite: Path, write_candidate: Callable[[str, str], Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = write_candidate("fake_build", FAKE_BUILD.replace("VARIANT", "one"))
    assert "fresh build" in _stdout_of(suite, first, "--build-cache", str(cache))
    assert "reused build one" in _stdout_of(suite, first, "--build-cache", str(cache))
    # torch's build lock is never kept (a copied one would make the next load wait forever)
    assert not list(cache.rglob("lock")) and list(cache.rglob("scale.so"))

    # The same code under another file content (an edit) gets no build from the first one.
    edited = write_candidate("fake_build_edited", FAKE_BUILD.replace("VARIANT", "two"))
    assert "fresh build" in _stdout_of(suite, edited, "--build-cache", str(cache))
    assert "reused build two" in _stdout_of(suite, edited, "--build-cache", str(cache))
    assert "reused build one" in _stdout_of(suite, first, "--build-cache", str(cache))

    # Turned off: nothing is read.
    assert "fresh build" in _stdout_of(suite, first, "--build-cache", str(cache), "--no-build-cache")


def test_a_failing_candidate_keeps_its_build_and_a_crashed_one_does_not(
    suite: Path, write_candidate: Callable[[str, str], Path], tmp_path: Path
) -> None:
    crashing = write_candidate("crash_build", FAKE_BUILD + "\nimport os\nos._exit(3)\n")
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(crashing), "--json", *FAST_ARGS, "--build-cache", str(tmp_path / "c")
    )
    assert json.loads(proc.stdout)["result"]["status"] == "error"
    assert not list((tmp_path / "c").rglob("scale.so"))


def test_store_and_restore_copy_only_regular_build_files(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    ext = scratch / ".cache/torch_extensions/kh_x"
    ext.mkdir(parents=True)
    (ext / "x.so").write_bytes(b"\x7fELF")
    (ext / "lock").write_text("")
    (ext / "planted").symlink_to("/etc/passwd")
    (scratch / "elsewhere.txt").write_text("not a build")
    (scratch / ".cache/triton/abc").mkdir(parents=True)
    (scratch / ".cache/triton/abc/k.cubin").write_bytes(b"k")
    root = tmp_path / "root"

    assert build_cache.store(root, "cpu", "ab" * 32, scratch)
    assert not build_cache.store(root, "cpu", "ab" * 32, scratch)  # unchanged: nothing written
    entry = build_cache.entry_path(root, "cpu", "ab" * 32)
    kept = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file())
    assert kept == [".cache/torch_extensions/kh_x/x.so", ".cache/triton/abc/k.cubin"]

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert build_cache.restore(root, "cpu", "ab" * 32, fresh) == 2
    assert (fresh / ".cache/torch_extensions/kh_x/x.so").read_bytes() == b"\x7fELF"
    assert build_cache.restore(root, "gpu", "ab" * 32, tmp_path / "other") == 0  # per backend
    assert build_cache.restore(root, "cpu", "cd" * 32, tmp_path / "other") == 0  # per file content
    assert build_cache.restore(None, "cpu", "ab" * 32, tmp_path / "other") == 0  # turned off


def test_store_refuses_a_build_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "s"
    (scratch / ".cache/torch_extensions").mkdir(parents=True)
    (scratch / ".cache/torch_extensions/big.so").write_bytes(b"x" * 100)
    monkeypatch.setattr(build_cache, "MAX_ENTRY_BYTES", 50)
    assert not build_cache.store(tmp_path / "root", "cpu", "ef" * 32, scratch)
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", None), ("", None), ("/tmp/kh-cache", Path("/tmp/kh-cache"))],
)
def test_default_root_follows_the_environment(
    value: str, expected: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(build_cache.ENV, value)
    assert build_cache.default_root() == expected


def test_default_root_is_in_the_accounts_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(build_cache.ENV, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-home")
    root = build_cache.default_root()
    assert root is not None and root.parts[-3:] == (".cache", "kernel-harness", "builds")
    assert not str(root).startswith("/nonexistent-home") or os.getuid() < 0
