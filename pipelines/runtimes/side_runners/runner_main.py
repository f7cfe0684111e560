"""The request loop every runner script shares (see ``sideproto`` for the protocol).

``serve(framework, handlers)`` never returns normally: it exits when stdin closes, on
``exit``, or when the parent process dies (Linux ``PR_SET_PDEATHSIG``), so a runner never
outlives the build that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback

import sideproto


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the closed stdin still ends the loop
    parent = os.environ.get("ZOOMAKE_SIDE_PARENT")
    if parent and os.getppid() != int(parent):  # the parent died before prctl took effect
        sys.exit(0)


def _protocol_stdout():
    """A private copy of stdout for frames; fd 1 then points at stderr, so whatever the
    framework's C++ core prints cannot corrupt the protocol."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def serve(framework: str, handlers: dict) -> None:
    _die_with_parent()
    out = _protocol_stdout()
    stdin = sys.stdin.buffer
    while True:
        frame = sideproto.read_frame(stdin)
        if frame is None:
            return
        header, arrays = frame
        op = header.get("op")
        if op == "exit":
            out.write(sideproto.encode({"ok": True}))
            return
        handler = handlers.get(op)
        t0 = time.perf_counter()
        try:
            if handler is None:
                raise ValueError(f"unknown request '{op}'")
            result, result_arrays = handler(header, arrays)
            reply = sideproto.encode(
                {"ok": True, "seconds": time.perf_counter() - t0, **result}, result_arrays
            )
        except Exception as exc:  # any failure of the framework is the caller's one-line error
            traceback.print_exc(file=sys.stderr)
            reply = sideproto.encode({"ok": False, "error": _one_line(exc)})
        out.write(reply)
