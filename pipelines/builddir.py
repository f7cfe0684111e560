"""Check that the build directory can hold doit's state before doit opens it.

doit opens ``<build>/.doit.db`` (sqlite) before any task runs and writes it even on a no-op
build, so an unusable ``ZOOMAKE_BUILD`` (a path under a regular file, a read-only or full file
system, a ``.doit.db`` that is a directory or not a database) would otherwise surface as a
``sqlite3.OperationalError`` or ``NotADirectoryError`` traceback from inside doit. The probe
costs a mkdir, one empty temporary file and, when the database exists, one sqlite open.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from pipelines.errors import ZoomakeError, os_error_line


def check_build_dir(build: Path, db_name: str = ".doit.db") -> None:
    """Raise ``ZoomakeError`` (one line naming the path) unless ``build`` is a usable build dir."""
    label = f"ZOOMAKE_BUILD={build}" if os.environ.get("ZOOMAKE_BUILD") else str(build)
    try:
        build.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=build)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ZoomakeError(
            f"{label}: cannot use as the build directory: {os_error_line(exc)}"
        ) from None
    db = build / db_name
    if db.is_dir():
        raise ZoomakeError(f"{db}: doit's state database is a directory; remove it")
    if db.exists():
        try:
            # Read-only open: the probe must not create or change anything.
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.close()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                return  # another build is writing it: readable, and not this check's business
            raise ZoomakeError(
                f"{db}: doit's state database is unreadable ({exc}); delete it (the next "
                f"build redoes every task)"
            ) from None
