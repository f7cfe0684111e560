"""One build at a time per build directory: an exclusive ``flock`` on ``<build>/.lock``.

Two ``doit`` runs on one build directory race on every file (the second one's ``measure``
deletes the first one's ``verify.json``), so the second one stops with one line instead. The
lock is a ``flock`` on an open file: the kernel releases it when the holder dies, even by
``kill -9``, so a crashed build never leaves a stale lock behind. Worker processes of a
parallel build inherit the descriptor (``fork``) and with it the lock. The holder's pid is
written into the file for the message only; it is never trusted for the decision.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pipelines.errors import ZoomakeError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # build dir -> open descriptor holding the lock (this process)


def hold(build_dir: str | os.PathLike) -> None:
    """Take ``build_dir``'s lock for the rest of this process (again: no-op).

    Raises ZoomakeError ``another build holds <build>/.lock (pid N)`` if another process has it.
    """
    build = Path(build_dir)
    if build in _held:
        return
    path = build / LOCK_NAME
    try:
        build.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise ZoomakeError(f"{path}: cannot open the build lock ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ZoomakeError(f"another build holds {path} (pid {owner})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[build] = fd


def held(build_dir: str | os.PathLike) -> bool:
    return Path(build_dir) in _held
