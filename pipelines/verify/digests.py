"""sha256 of the files measure and reference read, once per file version per process.

Every target's ``measure`` of a model hashes the same source files and reads and hashes the
same stored reference files (``reference:<id>``); in a zoo build one doit process runs them all,
so each would be read and hashed four times for a four-target model. ``sha256_once`` hashes a
file once per version: the version is its identity (resolved path, size, mtime, ctime, inode),
which any write changes (ctime on every write, inode on a replace by rename). Like git's
"racily clean" rule, a file whose mtime or ctime is less than ``RACY_S`` older than the moment
it was hashed is not remembered (a write within the same file-system clock tick would not move
its timestamps), nor is one whose identity changed while it was hashed.

What this saves is measure's time, never a check: the ``verify`` gate (``measure.recheck``)
hashes every file afresh with ``sha256``, so even a stale entry could only make a gate fail,
never pass.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

# File-system timestamps move in clock ticks (1-10 ms); a file changed within RACY_S of being
# hashed is hashed again next time.
RACY_S = 0.05
_MEMO: dict[tuple, str] = {}
_LOCK = threading.Lock()  # doit -P thread runs tasks in threads of one process


def sha256(path: str | os.PathLike) -> str:
    """The sha256 of the file's bytes now (no memo)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _identity(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def sha256_once(path: str | os.PathLike) -> str:
    """``sha256(path)``, remembered for this version of the file (see the module docstring)."""
    path = Path(path)
    before = _identity(path)
    with _LOCK:
        hit = _MEMO.get(before)
    if hit is not None:
        return hit
    started = time.time_ns()
    digest = sha256(path)
    settled = started - int(RACY_S * 1e9)
    if _identity(path) == before and max(before[2], before[3]) < settled:
        with _LOCK:
            _MEMO[before] = digest
    return digest


def forget() -> None:
    """Drop every remembered digest (tests)."""
    with _LOCK:
        _MEMO.clear()
