"""Keep what a candidate compiled between runs, without letting candidates share it.

A candidate may write only inside its scratch folder (Landlock), and that folder is removed after
each evaluation, so a C++ extension (``load_inline``) or Triton kernel built there would be built
again on every run. The supervisor, which is trusted and outside the sandbox, therefore copies the
candidate's build folders out of the scratch folder after an evaluation that ran to its end (pass
or fail), into an entry named by the backend and the SHA-256 of the solution file, and copies that
entry into the scratch folder of the next evaluation of a byte-identical file before it is loaded.

What this guarantees: a candidate only ever finds builds made by runs of exactly its own source.
It cannot plant a library for another case, another solution set or an edited version of itself,
and the entry it finds is a copy (it cannot change the stored one while it runs). What it does not
guarantee: that a stored build is correct. It is the candidate's own output, so the usual checks
(correctness on fresh inputs, timed outputs) apply to it as to a fresh build.

The key is the solution file alone. Code the file takes from elsewhere (``harness.solutions``: the
shared C++ snippets, the shared Triton kernels) can change under an unchanged file, so whatever loads
a build must name it by everything that went into it: ``harness.solutions.load_cpp_extension`` hashes
the full C++ text (snippets pasted in) into the build's name, and Triton's cache key covers the source
of every kernel a kernel calls. A restored build of older shared code is then simply never used.

The cache is on by default (``--build-cache DIR``, ``$HARNESS_BUILD_CACHE``, or
``~/.cache/kernel-harness/builds``) and off with ``--no-build-cache``. Deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

# Folders under a scratch folder that hold builds (the cache variables the worker sets point there).
BUILD_DIRS = (".cache/torch_extensions", ".cache/triton")
MAX_ENTRY_BYTES = 2 << 30  # a bigger build is not kept (it would be rebuilt, which is only slower)
_SKIPPED_NAMES = frozenset({"lock"})  # torch's build lock: a copied one would make the next load wait
ENV = "HARNESS_BUILD_CACHE"


def default_root() -> Path | None:
    """``$HARNESS_BUILD_CACHE`` (``off`` or empty: no cache), else the account's cache folder.

    The account's home comes from the password database, not ``$HOME``, so that a process with a
    redirected home (a candidate's) and the supervisor agree.
    """
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip() in ("", "off", "0", "none") else Path(value).expanduser()
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        home = Path.home()
    return home / ".cache" / "kernel-harness" / "builds"


def entry_path(root: Path, backend: str, solution_sha256: str) -> Path:
    """The entry for one solution file's content on one backend."""
    return root / f"{backend}-{solution_sha256}"


def restore(root: Path | None, backend: str, solution_sha256: str | None, scratch: Path | None) -> int:
    """Copy the stored builds of this solution into ``scratch``; returns the number of files copied."""
    if root is None or not solution_sha256 or scratch is None:
        return 0
    entry = entry_path(root, backend, solution_sha256)
    if not entry.is_dir():
        return 0
    copied = 0
    for rel, _size in _listing(entry):
        target = scratch / rel
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry / rel, target)
            copied += 1
    return copied


def store(root: Path | None, backend: str, solution_sha256: str | None, scratch: Path | None) -> bool:
    """Keep the builds found in ``scratch`` for the next run of the same file; True when stored.

    Nothing is written when the scratch folder holds exactly what the entry holds (the usual case
    once a build was kept), when it holds no build, or when it is larger than ``MAX_ENTRY_BYTES``.
    The entry is replaced whole and atomically (a rename), so a reader never sees half of one.
    Failures (a full or read-only disk) are swallowed: the cache only saves time.
    """
    if root is None or not solution_sha256 or scratch is None:
        return False
    found = sorted(_listing(scratch))
    if not found or sum(size for _rel, size in found) > MAX_ENTRY_BYTES:
        return False
    entry = entry_path(root, backend, solution_sha256)
    if entry.is_dir() and sorted(_listing(entry)) == found:
        return False
    staging: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
        for rel, _size in found:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(scratch / rel, staging / rel)
        old = None
        if entry.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=root))
            os.replace(entry, old / "entry")
        os.replace(staging, entry)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return True
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        return False


def _listing(base: Path) -> list[tuple[str, int]]:
    """(path relative to ``base``, size) of the regular files under its build folders.

    Symbolic links and special files are left out: a copy follows only what the candidate really
    wrote, never a link it planted to something outside its scratch folder.
    """
    out: list[tuple[str, int]] = []
    for sub in BUILD_DIRS:
        top = base / sub
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                if name in _SKIPPED_NAMES:
                    continue
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    info = os.lstat(path)  # lstat: a link is not a regular file here
                    if stat.S_ISREG(info.st_mode):
                        out.append((os.path.relpath(path, base), info.st_size))
    return out
