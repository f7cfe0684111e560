"""Work started in a thread now and collected later: ``Background(fn).result()`` waits for it
and returns ``fn()``'s value, or raises what it raised, in the caller's thread.

Used to hash big files (hashlib releases the GIL) while the caller imports, parses and writes.
Not ``concurrent.futures``: its threads are joined at interpreter exit, so a process that fails
early would still wait for a 550 MB hash it no longer needs; this thread is a daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    def __init__(self, fn: Callable[[], T], name: str = "background"):
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # re-raised by result(), in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
