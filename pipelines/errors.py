"""User-facing errors of the build pipeline, and the one place that turns a failure into a line.

``describe`` is shared by the CLI (``pipelines.cli.main.main``) and the doit action wrapper
(``pipelines.build.actions.guarded``): both print exactly one line for any failure and never a
traceback. Three kinds are told apart:

- bad input (``ConversionError``, ``ZoomakeError``): the message already names the file, layer
  or field, what was expected and what was found;
- the environment (``OSError`` with an errno: disk full, read-only or missing directories,
  permissions): the failing path and the system's reason;
- anything else is a bug in zoomake: ``internal error (please report)`` with the exception type
  and the innermost project frame, so it can never pass for a bad-input message (the fuzz
  tests count these as failures). ``ZOOMAKE_TRACEBACK=1`` re-raises it for the full traceback.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path

EXIT_BAD_INPUT = 1
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE: "an internal software error has been detected"
INTERNAL_PREFIX = "internal error (please report)"

_ROOT = Path(__file__).resolve().parents[1]
# What the user can do about an environment error, where there is one obvious thing to do.
_ERRNO_HINTS = {
    errno.ENOSPC: "free some space, or point ZOOMAKE_BUILD / ZOOMAKE_CACHE / -o elsewhere",
    errno.EDQUOT: "free some space, or point ZOOMAKE_BUILD / ZOOMAKE_CACHE / -o elsewhere",
    errno.EROFS: "the file system is read-only; point ZOOMAKE_BUILD / ZOOMAKE_CACHE / -o elsewhere",
}


class ZoomakeError(Exception):
    """A problem with the user's recipes, files or environment; ``str()`` is the whole message."""


def _expected_types() -> tuple[type[BaseException], ...]:
    from converters.errors import ConversionError  # converters never import pipelines

    return (ConversionError, ZoomakeError)


def os_error_line(exc: OSError) -> str:
    """``<path>: <reason> [-> <path2>] (<hint>)`` for an OSError raised by the system."""
    reason = exc.strerror or type(exc).__name__
    where = ""
    if exc.filename is not None:
        where = f"{os.fsdecode(exc.filename)}: "
        if exc.filename2 is not None:
            where = f"{os.fsdecode(exc.filename)} -> {os.fsdecode(exc.filename2)}: "
    hint = _ERRNO_HINTS.get(exc.errno)
    return f"{where}{reason}" + (f" ({hint})" if hint else "")


def _where(exc: BaseException) -> str:
    """The innermost frame in this project's code (else the innermost frame at all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(_ROOT)) and "/.venv/" not in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return ""
    path = Path(frame.filename)
    with_root = path.is_relative_to(_ROOT)
    shown = path.relative_to(_ROOT) if with_root else path
    return f" at {shown}:{frame.lineno} in {frame.name}"


def is_internal(line: str) -> bool:
    """Whether a line printed by ``describe`` reports a bug rather than bad input."""
    return INTERNAL_PREFIX in line


def describe(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for a failure; re-raises bugs when ``ZOOMAKE_TRACEBACK=1``."""
    if isinstance(exc, _expected_types()):
        return EXIT_BAD_INPUT, str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None:
        return EXIT_BAD_INPUT, os_error_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_BAD_INPUT, "out of memory (the model or one of its tensors is too large)"
    if os.environ.get("ZOOMAKE_TRACEBACK", "").strip() in ("1", "true", "yes"):
        raise exc
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    detail = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return EXIT_INTERNAL, f"{INTERNAL_PREFIX}: {detail}: {message}{_where(exc)}"
