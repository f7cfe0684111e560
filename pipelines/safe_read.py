"""Read local files for fetch without hanging or overreading: regular files only, bounded reads.

Whatever a recipe's ``file://`` URL or a mirror names may be a FIFO (``open`` blocks until a
writer appears), a device (``/dev/zero`` never ends), a directory or a dangling symlink. Files
are opened with ``O_NONBLOCK`` (so a FIFO cannot block the ``open``) and ``fstat``-ed on the
open descriptor (so the check and the read see the same file), and every read stops after a
byte limit. Problems come back as short phrases for the caller's one-line error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

BLOCK = 1 << 20

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class NotReadable(Exception):
    """``str()`` says what is wrong with the path, e.g. 'is a directory, not a regular file'."""


def open_regular(path: str | os.PathLike):
    """A binary reader on ``path`` if it is a regular file (symlinks followed); else NotReadable."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise NotReadable(f"is a dangling symbolic link (to {os.readlink(path)})") from None
        raise NotReadable("does not exist") from None
    except OSError as exc:
        raise NotReadable(f"cannot be read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotReadable(
            f"is {_KINDS.get(stat.S_IFMT(mode), 'a special file')}, not a regular file"
        )
    os.set_blocking(fd, True)  # O_NONBLOCK was only for the open() of a FIFO
    return os.fdopen(fd, "rb")


def size_of(f) -> int:
    return os.fstat(f.fileno()).st_size


def hash_stream(f, limit: int, copy_to: str | os.PathLike | None = None) -> tuple[str, int]:
    """(sha256, byte count) of at most ``limit`` bytes of ``f``, copied to ``copy_to`` if given."""
    digest = hashlib.sha256()
    done = 0
    try:
        with open(copy_to, "wb") if copy_to is not None else contextlib.nullcontext() as out:
            while done < limit and (block := f.read(min(BLOCK, limit - done))):
                digest.update(block)
                done += len(block)
                if out is not None:
                    try:
                        out.write(block)
                    except OSError as exc:
                        exc.filename = str(copy_to)  # name the file that could not be written
                        raise
    except OSError as exc:  # writes, and the flush when the copy closes (a full disk)
        if copy_to is not None and exc.filename is None:
            exc.filename = str(copy_to)
        raise
    return digest.hexdigest(), done


def sha256_file(path: str | os.PathLike, limit: int) -> tuple[str, int]:
    """(sha256, byte count) of the first ``limit`` bytes of a regular file; NotReadable else."""
    with open_regular(path) as f:
        return hash_stream(f, limit)


def is_under(path: str | os.PathLike, roots) -> bool:
    """True when ``path`` (symlinks resolved) lies inside one of the directories ``roots``."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(r)) for r in roots)
