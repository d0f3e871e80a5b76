"""The file watch: detects (and for case and solution files undoes) writes outside scratch folders
where Landlock cannot forbid them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WatchRoot:
    """A folder (or file) whose files must not change while candidates run.

    ``depth``: how many levels of folders to look into (None: all). ``restore``: keep the bytes of
    its small files and put them back when a candidate changes them. ``ignore``: names skipped at
    any depth; ``ignore_suffixes``: likewise for names ending so (the supervisor's own files).
    """

    path: Path
    depth: int | None = None
    restore: bool = False
    ignore: frozenset[str] = frozenset()
    ignore_suffixes: tuple[str, ...] = ()


_Signature = tuple[int, int, int, int]
_MAX_WATCHED_FILES = 50_000
_MAX_KEPT_FILE_BYTES = 1 << 20
_MAX_KEPT_BYTES = 64 << 20


class FileWatch:
    """Detects (and, for case and solution files, undoes) changes to files outside scratch folders.

    The fallback for kernels without Landlock, where a candidate's writes cannot be forbidden: the
    state of the watched files (size, mtime, ctime, inode -- ctime cannot be set back by a process)
    is compared after each evaluation with the state before it.
    """

    def __init__(self, roots: Sequence[WatchRoot]) -> None:
        self.roots = [r for r in roots if r.path.exists()]
        self._restore_under = tuple(str(r.path) + os.sep for r in self.roots if r.restore and r.path.is_dir())
        self._lock = threading.Lock()
        self._contents: dict[str, bytes] = {}
        self._baseline = self._snapshot()
        kept = 0
        for root in self.roots:
            if not root.restore:
                continue
            for path, sig in self._walk(root).items():
                if sig[0] <= _MAX_KEPT_FILE_BYTES and kept + sig[0] <= _MAX_KEPT_BYTES:
                    with contextlib.suppress(OSError):
                        self._contents[path] = Path(path).read_bytes()
                        kept += sig[0]

    def check(self) -> tuple[list[str], list[str]]:
        """Files changed, created or removed since the last check, and those of them put back.

        In folders it restores (suite, solutions, harness), a changed or removed file gets its old
        bytes back and a new file is removed.
        """
        with self._lock:
            current = self._snapshot()
            changed = sorted(
                p for p in self._baseline.keys() | current.keys() if self._baseline.get(p) != current.get(p)
            )
            restored = []
            for path in changed:
                content = self._contents.get(path)
                with contextlib.suppress(OSError):
                    if content is not None:
                        _replace_bytes(Path(path), content)
                        restored.append(path)
                    elif path not in self._baseline and path.startswith(self._restore_under):
                        os.unlink(path)
                        restored.append(path)
            self._baseline = self._snapshot() if restored else current
            return changed, restored

    def _snapshot(self) -> dict[str, _Signature]:
        state: dict[str, _Signature] = {}
        for root in self.roots:
            state.update(self._walk(root))
        return state

    @staticmethod
    def _walk(root: WatchRoot) -> dict[str, _Signature]:
        found: dict[str, _Signature] = {}
        if root.path.is_file():
            with contextlib.suppress(OSError):
                found[str(root.path)] = _signature(os.stat(root.path))
            return found
        stack = [(str(root.path), 0)]
        while stack and len(found) < _MAX_WATCHED_FILES:
            folder, level = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if name in root.ignore or (root.ignore_suffixes and name.endswith(root.ignore_suffixes)):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if root.depth is None or level + 1 < root.depth:
                        stack.append((entry.path, level + 1))
                else:
                    found[entry.path] = _signature(st)
        return found


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _replace_bytes(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.harness-restore")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def default_watch_roots(
    suite: Path | None,
    solutions: Path | None,
    out: Path | None,
    managed: Callable[[], Sequence[str]] | None = None,
) -> list[WatchRoot]:
    """What a run protects: suite and solutions (restored), its output folder but for the files the
    supervisor writes, the harness package (detected, not restored), and the top level of HOME."""
    import harness

    roots = []
    if suite is not None:
        roots.append(WatchRoot(suite.resolve(), restore=True))
    if solutions is not None:
        roots.append(WatchRoot(solutions.resolve(), restore=True))
    if out is not None:
        names = frozenset(managed() if managed else ("journal.jsonl", "result.json", "leaderboard.json"))
        roots.append(
            WatchRoot(out.resolve(), ignore=names, ignore_suffixes=(".tmp", ".invalid.json", ".errors.txt"))
        )
    # The harness package is watched, not restored: silently reverting it would also revert a
    # developer's own edits made while a run goes on.
    roots.append(WatchRoot(Path(harness.__file__).resolve().parent, ignore=frozenset({"__pycache__"})))
    home = os.environ.get("HOME")
    if home:
        roots.append(WatchRoot(Path(home), depth=1))
    return roots
