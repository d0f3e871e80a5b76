"""Landlock (Linux >= 5.13): no writes outside the scratch folder for a candidate's whole process tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path
from typing import Any

from harness.sandbox.process import _PR_SET_NO_NEW_PRIVS, _libc, prctl

# Landlock (Linux >= 5.13): forbid writes outside the scratch folder for the candidate's whole tree.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE = 1 << 1
_FS_WRITE_RIGHTS_V1 = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))  # write, remove, make_*
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_TCP = (1 << 0) | (1 << 1)  # ABI 4: bind and connect
_SCOPE_ALL = (1 << 0) | (1 << 1)  # ABI 6: abstract unix sockets and signals
# Device files a candidate may write: null and friends, and accelerators (CUDA, Ascend, ROCm, DRM).
_WRITABLE_DEVICES = ("null", "zero", "full", "random", "urandom")
_DEVICE_PREFIXES = ("nvidia", "davinci", "devmm_svm", "hisi_hdc", "kfd", "dri", "accel")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    try:
        abi = int(_libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return 0
    return max(abi, 0)


def apply_landlock(scratch: Path) -> dict[str, Any]:
    """Restrict this process and every process it starts later: no writes outside ``scratch``.

    Also, where the kernel supports it: no TCP, no signals or abstract-socket connections to
    processes outside the sandbox, and (always with Landlock) no ptrace of them. Returns what was
    enforced: ``{"landlock": abi}`` or ``{"landlock": None, "reason": why not}``.
    """
    abi = landlock_abi()
    if abi < 1:
        return {"landlock": None, "reason": "Landlock is not available in this kernel"}
    fs = _FS_WRITE_RIGHTS_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = int(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        return {
            "landlock": None,
            "reason": f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}",
        }
    try:
        file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
        for path, rights in _writable_paths(scratch, fs, file_rights):
            _allow(ruleset, path, rights)
        if not prctl(_PR_SET_NO_NEW_PRIVS, 1):
            return {"landlock": None, "reason": "prctl(PR_SET_NO_NEW_PRIVS) failed"}
        if int(libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)) != 0:
            return {
                "landlock": None,
                "reason": f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}",
            }
    finally:
        os.close(ruleset)
    return {"landlock": abi}


def _writable_paths(scratch: Path, dir_rights: int, file_rights: int) -> list[tuple[str, int]]:
    """The scratch folder and shared memory (everything), and device files a candidate may write."""
    paths = [(str(scratch), dir_rights)]
    if os.path.isdir("/dev/shm"):
        paths.append(("/dev/shm", dir_rights))
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/dev")):
            if name in _WRITABLE_DEVICES or name.startswith(_DEVICE_PREFIXES):
                paths.append((os.path.join("/dev", name), file_rights))
    return paths


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        rule = _PathBeneathAttr(rights, fd)
        if int(
            _libc().syscall(
                _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
        ):
            # A file rule cannot carry directory rights: retry with the file rights alone.
            rule = _PathBeneathAttr(rights & (_FS_WRITE_FILE | _FS_TRUNCATE), fd)
            _libc().syscall(
                _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
    finally:
        os.close(fd)
