"""``Background``: a thread's value or its exception, handed to the caller."""

from __future__ import annotations

import threading

import pytest

from pipelines.background import Background


def test_the_value_and_the_thread_it_came_from():
    started = threading.Event()
    seen = []

    def work():
        seen.append(threading.current_thread())
        started.set()
        return 42

    job = Background(work, "hash")
    assert started.wait(10)
    assert job.result() == 42 and job.result() == 42
    assert seen[0] is not threading.current_thread() and seen[0].daemon and seen[0].name == "hash"


def test_the_exception_is_raised_in_the_callers_thread():
    def work():
        raise FileNotFoundError("build/x/source/net.caffemodel")

    job = Background(work)
    with pytest.raises(FileNotFoundError, match=r"net\.caffemodel"):
        job.result()
