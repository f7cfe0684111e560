"""What measure and reference compute once per process: file digests (``digests.sha256_once``)
and sample feeds (``samples.random_feeds``/``image_feeds``). Each must give what a fresh
computation gives, see a changed file, and never hand two callers the same array."""

from __future__ import annotations

import hashlib
import re
import time

import cv2
import numpy as np
import pytest

from pipelines.runtimes.base import Port
from pipelines.verify import digests, samples
from pipelines.verify.measure import gate, measure
from tests.verify_helpers import built_with_reference


@pytest.fixture(autouse=True)
def _fresh_memos():
    digests.forget()
    samples._MEMO.clear()
    yield
    digests.forget()
    samples._MEMO.clear()


def _settled(path, data: bytes):
    path.write_bytes(data)
    time.sleep(digests.RACY_S + 0.05)  # older than the racy window: it may be remembered


def test_sha256_once_is_the_files_sha256_and_sees_an_edit_of_the_same_size(tmp_path):
    f = tmp_path / "w.bin"
    _settled(f, b"a" * 4096)
    assert digests.sha256_once(f) == hashlib.sha256(b"a" * 4096).hexdigest()
    assert len(digests._MEMO) == 1  # remembered ...
    assert digests.sha256_once(f) == hashlib.sha256(b"a" * 4096).hexdigest()
    with open(f, "r+b") as fh:  # ... until the file is written (in place, same size)
        fh.write(b"b")
    assert digests.sha256_once(f) == hashlib.sha256(b"b" + b"a" * 4095).hexdigest()


def test_a_file_written_just_now_is_not_remembered(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 100)
    assert digests.sha256_once(f) == hashlib.sha256(b"x" * 100).hexdigest()
    assert digests._MEMO == {}


def test_a_replaced_file_is_hashed_again(tmp_path):
    f, new = tmp_path / "w.bin", tmp_path / "new.bin"
    _settled(f, b"1" * 64)
    digests.sha256_once(f)
    new.write_bytes(b"2" * 64)
    new.replace(f)  # another inode
    assert digests.sha256_once(f) == hashlib.sha256(b"2" * 64).hexdigest()


def _inputs(shape=(1, 3, 8, 10), layout="NCHW"):
    recipe = {"inputs": {"data": {"preprocess": {"mean": [1.0, 2.0, 3.0]}}}}
    return samples.deployed_inputs(recipe, [Port("data", shape, np.dtype(np.float32))])


def test_random_feeds_are_the_seeded_draws_each_time_and_each_callers_own():
    inputs = _inputs()
    # numpy's own generator, as the docstring specifies the draw: uniform [0, 255) pixels
    want = np.random.default_rng([7, 2]).uniform(0.0, 255.0, size=(1, 3, 8, 10))
    first = samples.random_feeds(inputs, 7, 2)["data"]
    np.testing.assert_array_equal(first, want.astype(np.float32))
    first[...] = -1.0  # a caller changing its array ...
    second = samples.random_feeds(inputs, 7, 2)["data"]
    np.testing.assert_array_equal(second, want.astype(np.float32))  # ... changes no one else's
    assert second.flags.writeable
    other = samples.random_feeds(inputs, 7, 3)["data"]
    assert not np.array_equal(other, second)


def test_random_feeds_are_drawn_once_per_sample(monkeypatch):
    calls = []
    draw = samples._random_feeds
    monkeypatch.setattr(samples, "_random_feeds", lambda *a: calls.append(a[1:]) or draw(*a))
    inputs = _inputs()
    for _ in range(4):  # the reference and three targets of one model
        for i in range(3):
            samples.random_feeds(inputs, 5, i)
    assert calls == [(5, 0), (5, 1), (5, 2)]
    samples.random_feeds(_inputs(shape=(1, 3, 8, 12)), 5, 0)  # another shape: another sample
    assert calls[-1] == (5, 0) and len(calls) == 4


def _png(path, seed):
    image = np.random.default_rng(seed).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return image


def test_image_feeds_follow_the_image_file(tmp_path):
    inputs = _inputs()
    png = tmp_path / "sample.png"
    image = _png(png, 1)
    time.sleep(digests.RACY_S + 0.05)

    def expected(img):  # OpenCV's bilinear resize to 10x8, laid out NCHW
        return cv2.resize(img, (10, 8), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]

    np.testing.assert_array_equal(samples.image_feeds(inputs, png)["data"], expected(image))
    np.testing.assert_array_equal(samples.image_feeds(inputs, png)["data"], expected(image))
    image = _png(png, 2)  # the sample file changes: its feeds do
    np.testing.assert_array_equal(samples.image_feeds(inputs, png)["data"], expected(image))


def test_image_feeds_of_a_missing_file_say_so(tmp_path):
    with pytest.raises(Exception, match=r"missing\.png: not an image OpenCV can decode"):
        samples.image_feeds(_inputs(), tmp_path / "missing.png")


def test_a_wrong_remembered_digest_can_only_fail_the_gate(tmp_path, capsys):
    """measure records what sha256_once says; the gate hashes every file again itself."""
    recipe, build, out_dir, sources = built_with_reference(
        tmp_path, samples=2, seed=3, reference="opencv"
    )
    caffemodel = sources["caffemodel"]
    key = digests._identity(caffemodel)
    with digests._LOCK:  # as if the file had changed without its identity changing
        digests._MEMO[key] = "0" * 64
    report = measure("m", recipe, "onnx", sources, out_dir, reference_dir=build / "m" / "reference")
    assert report["sha256"]["source"]["caffemodel"]["sha256"] == "0" * 64
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    err = capsys.readouterr().err
    assert re.search(r"sha256 [0-9a-f]{64} differs from 0{64}, the source file", err), err
    digests.forget()
    measure("m", recipe, "onnx", sources, out_dir, reference_dir=build / "m" / "reference")
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is True
